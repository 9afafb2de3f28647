"""Flask extensions, created unbound: ``create_app`` wires them to an app."""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
# Storage: Redis when REDIS_URL is set (shared by every process), else per process.
limiter = Limiter(key_func=get_remote_address, headers_enabled=False, key_prefix="lettrine")
