from flask import session

LOCALES = ("fr", "en")


def select_locale() -> str:
    # French first: English only when the user chose it, never from the browser.
    chosen = session.get("lang")
    return chosen if chosen in LOCALES else "fr"
