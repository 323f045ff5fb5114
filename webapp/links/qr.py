"""QR codes of short links, as SVG or PNG, drawn by ``segno`` (no image library needed).

A code encodes the link's ``short_url``, never its target: a printed poster
keeps working when the target changes, and every scan is a counted click.
"""

import io

import segno

FORMATS = {"svg": "image/svg+xml", "png": "image/png"}
# Pixels per module: about 33 modules for a short URL, so 1..40 gives roughly 40..1300 px.
MIN_SCALE, MAX_SCALE, DEFAULT_SCALE = 1, 40, 8


class InvalidQrRequest(ValueError):
    """A format or size we do not draw; the message is for the user."""


def qr_code(short_url, image_format="svg", scale=DEFAULT_SCALE):
    """(bytes, mimetype) of the QR code of ``short_url``."""
    if image_format not in FORMATS:
        raise InvalidQrRequest(f"format must be one of {', '.join(FORMATS)}")
    if isinstance(scale, bool) or not isinstance(scale, int) or not MIN_SCALE <= scale <= MAX_SCALE:
        raise InvalidQrRequest(f"size must be a whole number from {MIN_SCALE} to {MAX_SCALE}")
    # Error correction "M": survives a smudged or partly covered print.
    code = segno.make(short_url, error="m", micro=False)
    out = io.BytesIO()
    code.save(out, kind=image_format, scale=scale, border=4)
    return out.getvalue(), FORMATS[image_format]


def parse_scale(raw):
    """The ``size`` query parameter as a whole number (range checked by ``qr_code``)."""
    if raw is None or raw == "":
        return DEFAULT_SCALE
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 3:
        raise InvalidQrRequest(f"size must be a whole number from {MIN_SCALE} to {MAX_SCALE}")
    return int(raw)
