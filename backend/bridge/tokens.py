"""The model server's access token in a file: read strictly, by the server and its clients.

Standard library only. A token file must be private (POSIX: no group or other bits) and
hold one token without spaces; the messages say how to fix a file that is not.
"""

import os
import stat
from pathlib import Path

from .regular_files import FileTooLarge, NotRegularFile, read_regular

MIN_TOKEN_CHARS = 16
MAX_TOKEN_CHARS = 4096
_RULE = f"token file {{path}} must hold one token of {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} characters without spaces"


class TokenFileError(Exception):
    """The token file cannot be used; the message says what to do."""


def read_token_file(path) -> str:
    """The token in `path`, refusing files that others can read (POSIX) or odd contents."""
    path = Path(path).expanduser()
    try:  # a named pipe or a device is refused, never waited on
        data, info = read_regular(path, MAX_TOKEN_CHARS * 4 + 64)
        text = data.decode("utf-8").strip()
    except FileNotFoundError:
        raise TokenFileError(f"token file {path} does not exist") from None
    except NotRegularFile as exc:
        raise TokenFileError(f"token file {path} is {exc.kind}, not a file: give the file that holds the token") from None
    except FileTooLarge:
        raise TokenFileError(_RULE.format(path=path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"token file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenFileError(f"token file {path} can be read by other users: run 'chmod 600 {path}'")
    if not MIN_TOKEN_CHARS <= len(text) <= MAX_TOKEN_CHARS or any(c.isspace() for c in text):
        raise TokenFileError(_RULE.format(path=path))
    return text
