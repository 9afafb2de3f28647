"""Each pre-send check: one case that triggers it, and the clean demo that does not."""

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy.orm import Session

from emails import BlockData, IssueData, compile_variant
from emails.checks import Finding, run_checks
from service.config import Config
from service.issues.models import Issue
from service.issues.rendering import presend_checks

BEFORE_EVENTS = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


def _codes(issue: IssueData, *, send_at: dt.datetime = BEFORE_EVENTS, **kwargs: Any) -> set[str]:
    findings = run_checks(issue, [compile_variant(issue, None)], send_at=send_at, **kwargs)
    return {f.code for f in findings}


def _with_block(issue: IssueData, kind: str, data: dict[str, Any]) -> IssueData:
    return replace(issue, blocks=[*issue.blocks, BlockData(id=900, kind=kind, data=data)])


def _news(**changes: Any) -> dict[str, Any]:
    return {"title": "Actualité", "html": "<p>Texte.</p>", "image": None, "link": None, **changes}


def test_the_demo_issue_is_clean(demo_issue: Issue, config: Config) -> None:
    assert presend_checks(demo_issue, config, BEFORE_EVENTS) == []


def test_clipped_html(demo: IssueData) -> None:
    assert "html-clipped" in _codes(demo, html_sizes=[103 * 1024])
    assert "html-clipped" not in _codes(demo, html_sizes=[101 * 1024])


def test_image_without_alt(demo: IssueData) -> None:
    image = {"url": "https://www.aula.example.org/media/atelier.jpg", "alt": "", "size": 80_000}
    assert "image-alt" in _codes(_with_block(demo, "news", _news(image=image)))
    described = {**image, "alt": "Élus et commerçants autour d'une table à Liévin"}
    assert "image-alt" not in _codes(_with_block(demo, "news", _news(image=described)))


@pytest.mark.parametrize(
    ("text", "code"), [("Cliquez ici", "link-text-vague"), ("  ", "link-text-empty")]
)
def test_link_texts(demo: IssueData, text: str, code: str) -> None:
    html = f'<p>Le programme : <a href="https://www.aula.example.org/p">{text}</a></p>'
    assert code in _codes(_with_block(demo, "text", {"title": None, "html": html}))
    good = '<p><a href="https://www.aula.example.org/p">Le programme des ateliers</a></p>'
    assert not {"link-text-vague", "link-text-empty"} & _codes(
        _with_block(demo, "text", {"title": None, "html": good})
    )


def test_link_schemes(demo: IssueData) -> None:
    bad = _news(link={"url": "ftp://files.aula.example.org/guide.pdf", "label": "Le guide"})
    assert "link-scheme" in _codes(_with_block(demo, "news", bad))
    mail = _news(link={"url": "mailto:contact@aula.example.org", "label": "Écrire à l'agence"})
    assert "link-scheme" not in _codes(_with_block(demo, "news", mail))


@pytest.mark.parametrize(
    "text", ["Bonjour {{ prenom }}", "Rendez-vous le [DATE]", "XXX", "Lorem ipsum"]
)
def test_placeholders(demo: IssueData, text: str) -> None:
    assert "placeholder" in _codes(
        _with_block(demo, "text", {"title": None, "html": f"<p>{text}</p>"})
    )
    assert "placeholder" in _codes(replace(demo, subject=f"Lettre : {text}"))


def test_missing_unsubscribe_link(demo: IssueData) -> None:
    variant = compile_variant(demo, None)
    stripped = replace(variant, html=variant.html.replace(f"{variant.nonce}UZ", "#"))
    findings = run_checks(demo, [stripped], send_at=BEFORE_EVENTS)
    assert "unsubscribe-missing" in {f.code for f in findings}
    assert "unsubscribe-missing" not in _codes(demo)


def test_missing_postal_address(demo: IssueData) -> None:
    issue = replace(demo, newsletter=replace(demo.newsletter, postal_address=" "))
    assert "postal-address-missing" in _codes(issue)


def test_events_past_at_send_time(demo: IssueData) -> None:
    after_lievin = dt.datetime(2027, 1, 20, tzinfo=dt.UTC)
    findings = run_checks(demo, [compile_variant(demo, None)], send_at=after_lievin)
    past = [f for f in findings if f.code == "event-past"]
    assert len(past) == 1
    assert "Liévin" in past[0].message or "innover" in past[0].message
    assert past[0].block_id == next(b.id for b in demo.blocks if b.kind == "agenda")
    assert "event-past" not in _codes(demo)


def test_subject_and_preheader(demo: IssueData) -> None:
    assert "subject-empty" in _codes(replace(demo, subject="  "))
    assert "subject-long" in _codes(replace(demo, subject="É" * 79))
    assert "subject-long" not in _codes(replace(demo, subject="É" * 78))
    assert "preheader-missing" in _codes(replace(demo, preheader=""))


def test_heavy_images(demo: IssueData) -> None:
    image = {"url": "https://www.aula.example.org/media/plan.png", "alt": "Plan", "size": 1_400_000}
    findings = run_checks(
        _with_block(demo, "news", _news(image=image)),
        [compile_variant(demo, None)],
        send_at=BEFORE_EVENTS,
    )
    heavy = next(f for f in findings if f.code == "images-heavy")
    assert "1,4 Mo" in heavy.message
    light = {**image, "size": 300_000}
    assert "images-heavy" not in _codes(_with_block(demo, "news", _news(image=light)))


def test_errors_come_first_and_name_their_block(demo: IssueData) -> None:
    issue = _with_block(
        replace(demo, subject="", preheader=""), "text", {"title": None, "html": "<p>TODO</p>"}
    )
    findings = run_checks(issue, [compile_variant(issue, None)], send_at=BEFORE_EVENTS)
    assert [f.severity for f in findings] == sorted(
        (f.severity for f in findings), key=["error", "warning"].index
    )
    placeholder = next(f for f in findings if f.code == "placeholder")
    assert placeholder.block_id == 900
    assert placeholder.message.startswith(f"Bloc {len(issue.blocks)} (texte)")
    assert all(isinstance(f, Finding) for f in findings)


def test_presend_checks_measure_the_personalised_html(
    demo_issue: Issue, config: Config, db_session: Session
) -> None:
    demo_issue.blocks[0].data = {"title": None, "html": "<p>" + "Texte très long. " * 7000 + "</p>"}
    db_session.commit()
    codes = {f.code for f in presend_checks(demo_issue, config, BEFORE_EVENTS)}
    assert "html-clipped" in codes


def test_empty_issue_and_audience(demo: IssueData) -> None:
    assert {"blocks-empty", "audience-empty"} <= _codes(
        replace(demo, blocks=[], audience=frozenset())
    )
    assert not {"blocks-empty", "audience-empty"} & _codes(demo)


def test_block_reserved_to_segments_not_in_the_audience(demo: IssueData) -> None:
    restricted = next(b for b in demo.blocks if b.segments)
    others = frozenset(demo.audience - restricted.segments)
    assert "block-unseen" in _codes(replace(demo, audience=others))
    assert "block-unseen" not in _codes(demo)


def test_dkim_domain_must_match_the_sender(demo_issue: Issue, config: Config) -> None:
    aligned = replace(config, dkim_domain="aula.example.org")
    assert "dkim-alignment" not in {
        f.code for f in presend_checks(demo_issue, aligned, BEFORE_EVENTS)
    }
    other = replace(config, dkim_domain="mailer.example.net")
    findings = presend_checks(demo_issue, other, BEFORE_EVENTS)
    assert "dkim-alignment" in {f.code for f in findings}
