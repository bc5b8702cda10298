"""Debian's headless Chromium, driven by Selenium through Debian's ChromeDriver, for the desk's
browser tests: nothing is downloaded (no Selenium Manager), and the profile is a new one."""

import os
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


PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
WAIT = 30  # seconds for the desk to render anything

LOGGED_USER = """
const done = arguments[arguments.length - 1];
fetch("/api/method/frappe.auth.get_logged_user", {credentials: "same-origin"})
	.then((r) => r.json().then((body) => done([r.status, body.message || null])))
	.catch((e) => done([0, String(e)]));
"""


def prepare_desk_class(cls) -> None:
	"""What every browser test class checks first, and `cls.shots`: a missing browser or an
	unfinished setup wizard is a failure, never a skip (scripts/bootstrap installs both
	programs; scripts/frappe-suite completes the wizard)."""
	import frappe

	for program in (CHROMIUM, CHROMEDRIVER):
		if not os.access(program, os.X_OK):
			raise AssertionError(f"{program} is missing: apt-get install chromium chromium-driver")
	if not frappe.get_system_settings("setup_complete"):
		raise AssertionError(
			f"the setup wizard of {frappe.local.site} is not complete: "
			"bench --site SITE execute usedesk_email.testing.site.complete_setup"
		)
	cls.shots = screenshot_dir(cls)


def screenshot_dir(cls) -> str:
	"""$USEDESK_SCREENSHOTS, or a directory removed after the test class."""
	shots = os.environ.get("USEDESK_SCREENSHOTS")
	if not shots:
		shots = tempfile.mkdtemp(prefix="usedesk-desk-")
		cls.addClassCleanup(shutil.rmtree, shots, ignore_errors=True)
	os.makedirs(shots, exist_ok=True)
	return shots


def as_phone(driver) -> None:
	"""The page as a 390 px wide phone shows it (touch, mobile viewport)."""
	driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
	driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True})


class DeskBrowser:
	"""A test case's steps in the desk: log in through /login, wait for the page, screenshots.

	The test class sets `base` (the served site's URL) and `shots` (see `prepare_desk_class`)."""

	base: str
	shots: str

	def log_in(self, driver, user: str, password: str):
		"""Through the real /login page, as a person does."""
		from selenium.webdriver.common.by import By

		driver.get(f"{self.base}/login")
		self.wait(driver, lambda d: d.find_element(By.ID, "login_email").is_displayed())
		driver.find_element(By.ID, "login_email").send_keys(user)
		driver.find_element(By.ID, "login_password").send_keys(password)
		driver.find_element(By.CSS_SELECTOR, ".page-card-body .btn-login").click()
		self.wait(driver, lambda d: "/login" not in d.current_url)
		self.assertEqual(self.logged_user(driver), [200, user])

	def wait(self, driver, condition, timeout: float = WAIT):
		from selenium.webdriver.support.ui import WebDriverWait

		return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)

	def until_js(self, driver, script: str, *args, timeout: float = WAIT):
		return self.wait(driver, lambda d: d.execute_script(script, *args), timeout)

	def logged_user(self, driver) -> list:
		return driver.execute_async_script(LOGGED_USER)

	def shot(self, driver, name: str, element=None) -> str:
		if element:
			driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
		path = os.path.join(self.shots, f"{name}.png")
		driver.save_screenshot(path)
		return path
