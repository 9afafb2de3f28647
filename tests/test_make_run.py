"""`make run` as a newcomer meets it: `lettrine dev` on a fresh instance folder
(SQLite, filesystem broker), driven in Chromium, then stopped with one Ctrl-C."""

import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import chromium
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _read_output(process: subprocess.Popen[str], seen: list[str], ready: threading.Event) -> None:
    """Keep draining the pipe (a full pipe would block the servers) and flag the banner."""
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if "Press Ctrl-C to stop everything" in line:
            ready.set()


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            child = int(proc.name)
            found |= {child, *_children(child)}
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_make_run_serves_the_demo_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port, smtp_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "BASE_URL"}
    }
    env.update(
        LETTRINE_INSTANCE=str(tmp_path / "instance"),
        PORT=str(port),
        SMTP_PORT=str(smtp_port),
        PYTHONUNBUFFERED="1",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "dev"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen: list[str] = []
    ready = threading.Event()
    reader = threading.Thread(target=_read_output, args=(process, seen, ready), daemon=True)
    reader.start()
    try:
        if not ready.wait(timeout=120):
            pytest.fail("no ready banner in time:\n" + "".join(seen[-60:]))
        banner = "".join(seen)
        assert f"http://127.0.0.1:{port}/" in banner
        assert "admin@lettrine.example" in banner
        assert (tmp_path / "instance" / "secret_key").exists()
        assert (tmp_path / "instance" / "lettrine.db").exists()

        message = EmailMessage()
        message["From"] = "essai@aula.example.org"
        message["To"] = "maire@mairie-lievin.example.fr"
        message["Subject"] = "Essai depuis smtplib"
        message.set_content("Bonjour, ceci est un essai.")
        deadline = time.monotonic() + 30
        while True:  # the outbox may start a moment after the web app
            try:
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as smtp:
                    smtp.send_message(message)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

        base = f"http://127.0.0.1:{port}"
        with chromium() as browser:
            page = browser.new_page()
            page.goto(f"{base}/")
            expect(page).to_have_url(f"{base}/login?next=%2F")
            expect(page.locator("html")).to_have_attribute("lang", "fr")
            expect(page.get_by_role("heading", name="Connexion")).to_be_visible()

            page.get_by_label("Adresse e-mail").fill("admin@lettrine.example")
            page.get_by_label("Mot de passe").fill("pas le bon")
            page.get_by_role("button", name="Se connecter").click()
            expect(page.get_by_role("alert")).to_have_text(
                "Adresse e-mail ou mot de passe incorrect."
            )

            page.get_by_label("Mot de passe").fill("lettrine-demo")
            page.get_by_role("button", name="Se connecter").click()
            expect(page).to_have_url(f"{base}/")
            expect(page.locator('tr[data-status="draft"] td')).to_have_text("1")
            expect(page.get_by_role("cell", name="Commerce de demain", exact=False)).to_be_visible()
            # 300+ demo subscribers, spread over the five segments
            total = page.locator('[data-figure="subscribers-total"]').inner_text()
            assert int(total.replace("\u202f", "").replace("\xa0", "")) >= 300
            elus = page.locator("tr", has=page.get_by_role("rowheader", name="Élus", exact=True))
            assert int(elus.locator("td").first.inner_text()) > 0
            expect(page.get_by_role("rowheader", name="Chambres consulaires")).to_be_visible()

            page.get_by_role("link", name="Boîte d'envoi (dév.)").click()
            page.get_by_role("link", name="Essai depuis smtplib").click()
            expect(page.get_by_text("Bonjour, ceci est un essai.")).to_be_visible()
            expect(
                page.get_by_role("cell", name="maire@mairie-lievin.example.fr").first
            ).to_be_visible()
    finally:
        children = _children(process.pid)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            reader.join(timeout=10)
            assert process.stdout is not None
            process.stdout.close()
    assert children, "no child process was started"
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)], "processes survived Ctrl-C"
