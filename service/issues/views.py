from flask import Blueprint

bp = Blueprint("issues", __name__, url_prefix="/numeros")
