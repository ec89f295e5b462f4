"""Logging filters named in settings.LOGGING."""
import logging


class ClientErrorsInOneLine(logging.Filter):
    """A 4xx (a refused permission, a missing page) is the client's doing: one line, no traceback.
    Server errors keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", 500) < 500:
            record.exc_info = record.exc_text = None
        return True
