"""Runs an absl command's ``main`` for several argument lists in one process, so that tests of
what a command refuses pay for one interpreter and one import instead of one each.

    python -m tests.refusals MODULE '[["--flag=1"], ["--flag=2"]]'

Prints one JSON line: for each argument list, the exit status and what went to stderr. The
flags are reset to their defaults before each list, as a fresh process would have them.
"""

import contextlib
import importlib
import io
import json
import sys

from absl import app, flags, logging


def refusals(module_name: str, argument_lists: list[list[str]]) -> list[dict]:
    module = importlib.import_module(module_name)
    results = []
    for arguments in argument_lists:
        flags.FLAGS.unparse_flags()
        captured = io.StringIO()
        handler = logging.get_absl_handler()
        stream = handler.python_handler.stream
        handler.python_handler.stream = captured
        try:
            with contextlib.redirect_stderr(captured):
                app.run(module.main, argv=[module_name, *arguments])
            status = 0
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            handler.python_handler.stream = stream
        results.append({"status": status, "stderr": captured.getvalue()})
    return results


if __name__ == "__main__":
    print(json.dumps(refusals(sys.argv[1], json.loads(sys.argv[2]))))
