"""Errors a user can cause. The CLI prints their message as one line and exits with `exit_code`;
anything else is a bug and keeps its traceback."""


class UserError(Exception):
    exit_code = 2
