"""Form validators shared by every domain package."""

from flask_wtf import FlaskForm
from wtforms import Field
from wtforms.validators import ValidationError

from service.audience.services import InvalidAddressError, normalise_address


def sendable_address(_form: FlaskForm, field: Field) -> None:
    """An address we can put in an SMTP envelope and a header: the same rule as the
    audience (ASCII, IDNA domain), with its French reason, for every form. The field
    keeps the normalised spelling, so what is stored is what will be sent."""
    if not field.data:
        return
    try:
        field.data = normalise_address(field.data)
    except InvalidAddressError as error:
        raise ValidationError(str(error)) from None
