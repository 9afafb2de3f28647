"""Rendering benchmark: one full MJML render vs per-recipient personalisation.

    .venv/bin/python -m bench.render [--messages 20000] [--write]

Single process, so single core. Baselines measured in the same run: building
each message with the standard library (``email.message.EmailMessage``), and
DKIM with dkimpy's pure-Python signer. ``--write`` records the table in
docs/benchmarks.md.
"""

import argparse
import email.policy
import platform
import statistics
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import dkim
import mjml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.record import write_section
from emails import Personaliser, Recipient, build_template, compile_variant
from emails.dkim import DkimSigner
from service.config import load_config
from service.db import make_engine
from service.demo.services import load_demo
from service.issues.models import Issue
from service.issues.rendering import issue_data, render_settings
from service.models import Base


def _best_rate(run: Callable[[int], None], count: int, repeats: int = 3) -> float:
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(count)
        rates.append(count / (time.perf_counter() - started))
    return max(rates)


def _median_ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        load_demo(session)
        session.commit()
        issue = issue_data(session.scalars(select(Issue)).one())
    config = load_config(
        instance_path=Path("/tmp/lettrine-bench"),
        secret_key="bench",
        base_url="https://lettre.aula.example.org",
    )
    settings = render_settings(config, issue.id)
    recipients = [
        Recipient(i, f"prenom.nom{i}@mairie-lievin.example.fr", "Clémence", f"Dupont-{i}")
        for i in range(args.messages)
    ]

    compile_ms = _median_ms(lambda: compile_variant(issue, ["elus"]), 20)
    variant = compile_variant(issue, ["elus"])
    mjml_ms = _median_ms(lambda: mjml.mjml2html(variant.mjml, fonts={}), 50)
    template_ms = _median_ms(lambda: build_template(issue, variant, settings), 20)
    template = build_template(issue, variant, settings)
    personaliser = Personaliser(issue, template, settings)
    sample = personaliser.render(recipients[0])

    def personalise(n: int) -> None:
        render = personaliser.render
        for recipient in recipients[:n]:
            render(recipient)

    rate = _best_rate(personalise, args.messages)

    # Baseline 1: the standard library builds every message.
    parsed = email.message_from_bytes(sample, policy=email.policy.default)
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]

    def stdlib(n: int) -> None:
        for recipient in recipients[:n]:
            msg = EmailMessage(policy=email.policy.SMTP)
            msg["From"] = parsed["From"]
            msg["To"] = f"{recipient.display_name} <{recipient.email}>"
            msg["Subject"] = issue.subject
            msg["Message-ID"] = f"<{recipient.delivery_id}@lettre.aula.example.org>"
            msg["List-Unsubscribe"] = parsed["List-Unsubscribe"]
            msg.set_content(text)
            msg.add_alternative(html, subtype="html")
            msg.as_bytes()

    stdlib_rate = _best_rate(stdlib, min(500, args.messages))

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    signer = DkimSigner("aula.example.org", "bench", pem)

    def signed(n: int) -> None:
        for recipient in recipients[:n]:
            signer.sign(personaliser.render(recipient))

    dkim_rate = _best_rate(signed, min(2000, args.messages))

    def dkimpy(n: int) -> None:
        for recipient in recipients[:n]:
            dkim.sign(
                personaliser.render(recipient),
                b"bench",
                b"aula.example.org",
                pem,
                include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
            )

    dkimpy_rate = _best_rate(dkimpy, min(100, args.messages), repeats=1)

    rows = [
        (
            "One full render of the demo issue (Jinja → MJML → HTML + text)",
            f"{compile_ms:.1f} ms",
            "once per issue and variant",
        ),
        ("… of which mjml-python alone (MJML → HTML)", f"{mjml_ms:.2f} ms", "never per recipient"),
        (
            "Pre-encoding the message template (QP, headers, slots)",
            f"{template_ms:.1f} ms",
            "once per issue and variant",
        ),
        (
            "Personalised message, bytes ready for SMTP (no DKIM)",
            f"**{rate:,.0f} msg/s** ({1e6 / rate:.0f} µs)",
            "goal ≥ 20,000 msg/s on one core",
        ),
        (
            "Baseline: same message built with `email.message` + `as_bytes()`",
            f"{stdlib_rate:,.0f} msg/s ({1e3 / stdlib_rate:.1f} ms)",
            f"×{rate / stdlib_rate:.0f} slower",
        ),
        (
            "Personalised + DKIM signed (`cryptography`, RSA-2048)",
            f"{dkim_rate:,.0f} msg/s ({1e3 / dkim_rate:.2f} ms)",
            "when a DKIM key is configured",
        ),
        (
            "Baseline: personalised + DKIM with dkimpy's signer",
            f"{dkimpy_rate:,.0f} msg/s ({1e3 / dkimpy_rate:.1f} ms)",
            f"×{dkim_rate / dkimpy_rate:.0f} slower",
        ),
    ]
    size = len(sample)
    table = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, Python "
        f"{platform.python_version()}, one process. Demo issue: {len(issue.blocks)} blocks, "
        f"message {size / 1024:.0f} KiB, {len(template.link_positions)} tracked links per message.",
        "",
        "| operation | cost | note |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
    ]
    output = "\n".join(table)
    print(output)
    if args.write:
        write_section("render", output)


if __name__ == "__main__":
    main()
