"""The pre-encoded pieces and slot values concatenate into valid quoted-printable."""

import quopri
import random
import re

from emails.mime import _qp, _qp_value

ALPHABET = "aé €=\t.-_/:?&<>\"'" + "x" * 10 + "\n"


def test_pieces_and_slots_decode_back_and_keep_lines_short() -> None:
    rng = random.Random(2027)
    for _ in range(500):
        chunks = [
            "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 300))) for _ in range(5)
        ]
        encoded = b"".join(
            _qp_value(chunk) if i % 2 else _qp(chunk) for i, chunk in enumerate(chunks)
        )
        lines = encoded.split(b"\r\n")
        assert max(len(line) for line in lines) <= 76
        assert b"\n" not in encoded.replace(b"\r\n", b"")
        decoded = quopri.decodestring(encoded).decode("utf-8").replace("\r\n", "\n")
        assert decoded == "".join(chunks)


def test_carriage_returns_become_line_breaks() -> None:
    encoded = _qp("a\r\nb\rc\n") + _qp_value("d\r\ne")
    assert not re.search(rb"\r(?!\n)|(?<!\r)\n", encoded)
    assert quopri.decodestring(encoded).replace(b"\r\n", b"\n") == b"a\nb\nc\nd\ne"
