"""Headless chromium from the system's packages, driven through its chromedriver by
Selenium: the demo's and the browser tests' way to use the consent page like a person.

Nothing is downloaded: Selenium is pointed at ``/usr/bin/chromium`` and
``/usr/bin/chromedriver`` (Debian's ``chromium`` and ``chromium-driver``), so its own
driver manager never runs, and chromium starts with a fresh profile and its background
networking (updates, sync, component downloads) off. The page's certificate is accepted
by pinning: only the SPKI hash of the page's own self-signed certificate is trusted.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


class BrowserError(RuntimeError):
    """The browser could not do what the act asked."""


class BrowserMissingError(BrowserError):
    """Chromium, its driver or Selenium is not installed; the message says which."""


def missing() -> str | None:
    """What is missing to drive the browser, or None when everything is there."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if not CHROMEDRIVER.exists():
        return f"{CHROMEDRIVER} is missing (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is missing (pip install selenium)"
    return None


def spki_hash(cert_pem: Path) -> str:
    """The base64 SHA-256 of a certificate's public key, as chromium's pinning flag wants."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@contextmanager
def headless_chromium(page_cert: Path, *, width: int = 1200, height: int = 1000
                      ) -> Iterator[Any]:
    """A Selenium WebDriver of headless chromium trusting ``page_cert`` only."""
    problem = missing()
    if problem is not None:
        raise BrowserMissingError(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="mps-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-default-apps",
                 "--disable-extensions", f"--user-data-dir={profile}",
                 f"--window-size={width},{height}",
                 f"--ignore-certificate-errors-spki-list={spki_hash(page_cert)}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def arrive(driver: Any, suffix: str, timeout: float = 10.0) -> None:
    """Wait until the page at an address ending in ``suffix`` is shown: a click on a
    form's button returns before the navigation it starts has ended."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, timeout).until(lambda d: d.current_url.endswith(suffix))
    except TimeoutException as exc:
        raise BrowserError(f"the browser did not reach ...{suffix} within "
                                  f"{timeout:g} s (at {driver.current_url})") from exc
