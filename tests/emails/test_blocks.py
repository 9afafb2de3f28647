"""Block kinds: validation with French field errors, sanitising, SEQUENCE."""

from dataclasses import replace
from typing import Any

import pytest

from emails import BlockData, IssueData, RenderError, compile_variant
from emails.blocks import REGISTRY, BlockValidationError, get_kind
from service.issues.services import validated_block_data

EVENT = {
    "title": "Atelier à Liévin",
    "start": "2027-01-16T09:30",
    "end": "2027-01-16T12:30",
    "place": "Hôtel de ville, Liévin",
}


def _errors(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(BlockValidationError) as caught:
        validated_block_data(kind, data)
    return dict(caught.value.errors)


def test_the_registry_has_the_four_kinds() -> None:
    assert set(REGISTRY) == {"text", "news", "agenda", "resources"}
    for kind in REGISTRY.values():
        assert kind.template == f"blocks/{kind.name}.mjml"
    with pytest.raises(BlockValidationError, match="inconnu"):
        get_kind("carousel")


def test_demo_blocks_are_valid(demo: IssueData) -> None:
    for block in demo.blocks:
        cleaned = validated_block_data(block.kind, block.data, block.data)
        if block.kind != "agenda":
            assert cleaned == dict(block.data)


def test_news_errors_are_field_level_and_french() -> None:
    errors = _errors("news", {"title": "", "html": "", "link": {"url": "www.aula.example.org"}})
    assert errors["title"] == ["Donnez un titre à l'actualité."]
    assert errors["html"] == ["Le texte de l'actualité est vide."]
    assert errors["link"]["url"] == [
        "Adresse incomplète : ajoutez https:// au début (https://www.aula.example.org)."
    ]
    assert errors["link"]["label"] == [
        "Indiquez le texte du lien (par exemple « Lire l'article »)."
    ]


def test_agenda_dates_are_checked() -> None:
    bad = {"title": "Agenda", "events": [{**EVENT, "start": "le 16 janvier", "end": ""}]}
    errors = _errors("agenda", bad)
    assert "Date et heure non reconnues" in errors["events"][0]["start"][0]
    backwards = {"title": "Agenda", "events": [{**EVENT, "end": "2027-01-16T08:00"}]}
    assert _errors("agenda", backwards)["events"][0]["end"] == ["La fin doit être après le début."]
    assert (
        "Ajoutez au moins un événement."
        in _errors("agenda", {"title": "Agenda", "events": []})["events"]
    )


def test_resources_need_a_web_address() -> None:
    data = {"title": "Ressources", "items": [{"title": "Guide", "url": "javascript:alert(1)"}]}
    errors = _errors("resources", data)
    assert errors["items"][0]["url"] == [
        "Seules les adresses web en https:// ou http:// sont acceptées."
    ]


@pytest.mark.parametrize(
    "html",
    [
        '<p onclick="steal()">Bonjour</p><script>alert(1)</script>',
        '<p><a href="javascript:alert(1)">Bonjour</a></p>',
        '<p><img src=x onerror="alert(1)">Bonjour</p>',
        '<p style="background:url(javascript:alert(1))">Bonjour</p><iframe src="https://x"></iframe>',
    ],
)
def test_rich_text_is_sanitised_on_save_and_on_render(demo: IssueData, html: str) -> None:
    saved = validated_block_data("text", {"title": None, "html": html})
    for bad in ("script", "onclick", "onerror", "javascript:", "<img", "iframe", "style="):
        assert bad not in saved["html"]
    assert "Bonjour" in saved["html"]
    # Stored data that bypassed the form is sanitised again when rendered.
    raw_block = BlockData(id=999, kind="text", data={"title": None, "html": html})
    issue = replace(demo, blocks=[raw_block])
    rendered = compile_variant(issue, None).html
    for bad in ("<script", "onclick", "onerror", "javascript:", "<iframe"):
        assert bad not in rendered


def test_event_sequence_goes_up_only_on_significant_change() -> None:
    first = validated_block_data("agenda", {"title": "Agenda", "events": [EVENT]})
    uid = first["events"][0]["uid"]
    assert first["events"][0]["sequence"] == 0
    same = validated_block_data("agenda", first, first)
    assert same["events"][0]["sequence"] == 0
    moved = {"title": "Agenda", "events": [{**first["events"][0], "start": "2027-01-16T10:00"}]}
    second = validated_block_data("agenda", moved, first)
    assert second["events"][0]["uid"] == uid
    assert second["events"][0]["sequence"] == 1
    retitled = {"title": "Agenda", "events": [{**second["events"][0], "description": "Salle 2"}]}
    assert validated_block_data("agenda", retitled, second)["events"][0]["sequence"] == 1


def test_template_errors_name_the_template_and_line(demo: IssueData) -> None:
    broken = BlockData(id=998, kind="news", data={"html": "<p>Sans titre</p>"})  # no "title"
    with pytest.raises(RenderError) as caught:
        compile_variant(replace(demo, blocks=[broken]), None)
    assert caught.value.template == "blocks/news.mjml"
    assert caught.value.line == 3  # {% if data.image %}: the first key missing
    assert "blocks/news.mjml, ligne 3" in str(caught.value)


def test_the_text_version_says_download_for_files_only() -> None:
    kind = get_kind("resources")
    data = kind.clean(
        {
            "title": "Ressources",
            "items": [
                {"title": "Guide", "url": "https://a.example/guide.pdf", "format": "pdf"},
                {"title": "Tableau", "url": "https://a.example/t", "size": 2048},
                {"title": "Portail", "url": "https://a.example/", "format": "html"},
                {"title": "Fiche", "url": "https://a.example/fiche"},
            ],
        }
    )
    lines = "\n".join(kind.text(data, lambda url: url)).splitlines()
    actions = [line.strip().split(" [")[0] for line in lines if line.endswith("]")]
    assert actions == ["Télécharger", "Télécharger", "Consulter", "Consulter"]
