"""Debian's headless Chromium, driven by Selenium through Debian's ChromeDriver, for the desk's
browser tests: nothing is downloaded (no Selenium Manager), and the profile is a new one."""

import shutil
import tempfile
from collections.abc import Callable

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Without the networking flags Chromium keeps calling hosts this machine cannot reach.
CHROMIUM_FLAGS = (
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-quic",
	"--no-first-run",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--disable-dev-shm-usage",
	"--window-size=1400,1000",
)


def chromium(cleanup: Callable) -> "selenium.webdriver.Chrome":  # noqa: F821
	"""A new browser; `cleanup` (a test's addCleanup) is given its quit and its profile's removal."""
	from selenium import webdriver
	from selenium.webdriver.chrome.service import Service

	profile = tempfile.mkdtemp(prefix="usedesk-chromium-")
	cleanup(shutil.rmtree, profile, ignore_errors=True)
	options = webdriver.ChromeOptions()
	options.binary_location = CHROMIUM
	for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
		options.add_argument(flag)
	driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
	cleanup(driver.quit)
	return driver
