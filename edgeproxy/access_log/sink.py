"""
Where access records go.

:class:`AccessLog` is the process's one access log: a ``twisted.logger``
publisher of its own (not the global one, so access lines never reach the
process's log and the process's log never reaches the access log).  The HTTP
listeners hand it records; every observer on its publisher sees them as
events with the record under ``"record"``.  A third party may add observers
(to ship lines elsewhere) with :meth:`AccessLog.add_observer`, which also
turns record-making on.

:class:`AccessLogFile` is the observer that ``access_log = PATH`` sets up: it
appends one line per event to a file, opened with ``O_APPEND`` so that several
processes may share it.  A reload opens the file again (:meth:`AccessLog.use_file`):
``logrotate`` can move the file away and send ``SIGHUP``.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from twisted.logger import ILogObserver, LogPublisher
from zope.interface import implementer

from edgeproxy.access_log.formats import FORMATS
from edgeproxy.access_log.record import AccessRecord, SessionRecord

STANDARD_OUTPUT = "-"
"""The ``access_log`` value that writes to the process's standard output."""


@implementer(ILogObserver)
class AccessLogFile:
    """
    Appends one line per access event to a file (or standard output).

    :param path: the file's path, or :data:`STANDARD_OUTPUT`.
    :param line_format: the name of a format in
        :data:`~edgeproxy.access_log.formats.FORMATS`.
    :raises OSError: when the file cannot be opened for appending.
    """

    def __init__(self, path: str, line_format: str = "combined") -> None:
        self.path = path
        self.line_format = line_format
        self._format, self._session_format = FORMATS[line_format]
        self._fd = self._open()

    def _open(self) -> int:
        if self.path == STANDARD_OUTPUT:
            return 1
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def __call__(self, event: dict[str, Any]) -> None:
        """Write the line of one access event."""
        record = event.get("record")
        if isinstance(record, AccessRecord):
            line = self._format(record, event["log_time"])
        elif isinstance(record, SessionRecord):
            line = self._session_format(record, event["log_time"])
        else:
            return
        # A full disk must not fail the request that was served: the line is
        # lost (as with nginx) and the next one is tried again.
        with contextlib.suppress(OSError):
            os.write(self._fd, line)

    def close(self) -> None:
        """Close the file (standard output stays open)."""
        if self._fd > 2:
            os.close(self._fd)
            self._fd = -1


class AccessLog:
    """
    The process's access log: a publisher of its own and its file, if any.

    :ivar publisher: the observers of access events.
    :ivar enabled: whether anything observes the records; listeners skip
        making records when it is false.
    """

    def __init__(self) -> None:
        self.publisher = LogPublisher()
        self.file: AccessLogFile | None = None
        self._extra_observers = 0

    @property
    def enabled(self) -> bool:
        """Whether a record made now would be observed."""
        return self.file is not None or self._extra_observers > 0

    def add_observer(self, observer: ILogObserver) -> None:
        """Have ``observer`` see every access event too."""
        self.publisher.addObserver(observer)
        self._extra_observers += 1

    def log(self, record: AccessRecord | SessionRecord, when: float) -> None:
        """Publish ``record``, made at ``when`` (seconds since the epoch)."""
        self.publisher(
            {
                "log_namespace": "edgeproxy.access",
                "log_time": when,
                "log_format": None,
                "record": record,
            }
        )

    def use_file(self, path: str | None, line_format: str = "combined") -> None:
        """
        Write to ``path`` from now on (``None``: no file); the same path is
        opened again.

        :raises OSError: when ``path`` cannot be opened; nothing changes.
        """
        new = AccessLogFile(path, line_format) if path is not None else None
        old, self.file = self.file, new
        if new is not None:
            self.publisher.addObserver(new)
        if old is not None:
            self.publisher.removeObserver(old)
            old.close()

    def close(self) -> None:
        """Stop writing to the file."""
        self.use_file(None)
