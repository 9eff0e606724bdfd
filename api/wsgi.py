"""WSGI entry point for gunicorn: `gunicorn api.wsgi:app`."""

import logging
import threading

from api.app import create_app
from api.uploads import sweep_stale_uploads
from shared.config import get_settings
from shared.logs import configure_logging

#: How often the API looks for temp files that a killed API process left behind.
UPLOAD_SWEEP_INTERVAL_S = 600.0

logger = logging.getLogger(__name__)
configure_logging(get_settings().log_level)
app = create_app()


def _sweep_uploads_forever() -> None:
    settings = get_settings()
    stop = threading.Event()
    while True:
        try:
            removed = sweep_stale_uploads(app.config["ODDASR_UPLOAD_TMP_DIR"], settings.stale_upload_after_s)
            if removed:
                logger.info("removed %d upload temp files left by a stopped API process", removed)
        except OSError:
            logger.warning("could not sweep the upload temp directory", exc_info=True)
        stop.wait(UPLOAD_SWEEP_INTERVAL_S)


# Started in each worker process when gunicorn imports this module after forking (gevent
# patches threading first, so this is a greenlet).
threading.Thread(target=_sweep_uploads_forever, name="upload-sweeper", daemon=True).start()
