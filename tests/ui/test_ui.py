"""The admin UI at /ui in headless Chromium (Debian's chromium and
chromium-driver), driven by Selenium, against a server that
tests/e2e/ui.rs has prepared: a saga that failed (credit to a missing
account) and a saga whose branch sleeps an hour between retries.

    python test_ui.py --server URL --failed GID --retrying GID --screenshots DIR \
        --token-server URL --token TOKEN

Checks the list and its filters, the failed transaction's rollback reason,
failed op and history, that a dismissed confirm() sends nothing, that
retry-now (confirmed) runs the next attempt, and, on a second server that
has a token, that the page asks for it and then sends it; saves list.png and
detail.png in DIR. Exits non-zero with the reason on the first failed check.
"""

import argparse
import pathlib
import shutil
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

TIMEOUT = 20.0


def browser():
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        sys.exit("needs Debian's chromium and chromium-driver (cargo xtask test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in [
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-proxy-server",  # the server is on 127.0.0.1
        "--window-size=1400,1000",
    ]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def wait(driver, what, check, timeout=TIMEOUT):
    """Returns check(driver) once it is truthy; fails saying `what` otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check(driver)
            if result:
                return result
        except Exception as e:  # the page is re-rendered under us: try again
            last = e
        time.sleep(0.1)
    notice = driver.find_element(By.ID, "notice").text
    body = driver.find_element(By.TAG_NAME, "body").text[:2000]
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r}; notice: {notice!r})\n{body}")


def row(driver, gid):
    return driver.find_element(By.CSS_SELECTOR, f'#tx-table tr[data-gid="{gid}"]')


def op_row(driver, branch, op):
    return driver.find_element(By.CSS_SELECTOR, f'#ops tr[data-branch="{branch}"][data-op="{op}"]')


def attempts(driver, branch, op):
    return int(op_row(driver, branch, op).find_element(By.CLASS_NAME, "attempts").text)


def list_page(driver, server, failed, retrying, shots):
    driver.get(server + "/ui")
    wait(driver, "the failed transaction in the list", lambda d: row(d, failed))
    wait(driver, "the retrying transaction in the list", lambda d: row(d, retrying))
    assert row(driver, failed).find_element(By.CLASS_NAME, "badge").text == "failed"
    assert row(driver, retrying).find_element(By.CLASS_NAME, "badge").text == "submitted"
    assert "carol" in row(driver, failed).find_element(By.CLASS_NAME, "why").text, "the list shows why it failed"
    gids = [r.get_attribute("data-gid") for r in driver.find_elements(By.CSS_SELECTOR, "#tx-table tbody tr")]
    assert gids.index(retrying) < gids.index(failed), f"newest first: {gids}"
    figures = driver.find_element(By.ID, "figures").text
    assert "failed" in figures and "submitted" in figures, f"counts by status: {figures!r}"
    driver.save_screenshot(str(shots / "list.png"))

    # Filters are the API's: by status ...
    Select(driver.find_element(By.ID, "filter-status")).select_by_value("failed")
    wait(driver, "the status filter to leave only failed transactions", lambda d: "status=failed" in d.current_url
         and row(d, failed) and not d.find_elements(By.CSS_SELECTOR, f'#tx-table tr[data-gid="{retrying}"]'))
    # ... and by module (the retrying saga calls bank too; no transaction calls `nobody`).
    Select(driver.find_element(By.ID, "filter-status")).select_by_value("")
    wait(driver, "the status filter to be cleared", lambda d: "status=" not in d.current_url and row(d, retrying))
    module = driver.find_element(By.ID, "filter-module")
    module.send_keys("nobody")
    driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait(driver, "the module filter to leave none", lambda d: "module=nobody" in d.current_url
         and "No transactions match." in d.find_element(By.ID, "tx-table").text)


def failed_page(driver, failed, shots):
    driver.get(driver.current_url.split("#")[0] + "#/transactions")
    wait(driver, "the list", lambda d: row(d, failed)).find_element(By.CSS_SELECTOR, "a.gid").click()
    reason = wait(driver, "the rollback reason", lambda d: d.find_element(By.ID, "rollback-reason").is_displayed()
                  and d.find_element(By.ID, "rollback-reason"))
    assert "carol" in reason.text, f"the rollback reason names the missing account: {reason.text!r}"
    credit = wait(driver, "the failed op", lambda d: op_row(d, "02", "action"))
    assert credit.get_attribute("data-status") == "failed", credit.text
    assert credit.find_element(By.CLASS_NAME, "badge").text == "failed"
    assert "carol" in credit.find_element(By.CLASS_NAME, "why").text, f"the op's last error: {credit.text!r}"
    assert op_row(driver, "01", "compensate").get_attribute("data-status") == "succeeded", "the debit was compensated"
    history = wait(driver, "the history", lambda d: d.find_element(By.ID, "history").text)
    assert "02 action" in history and "failed" in history, f"the history shows the refused op: {history!r}"
    for control in ["abort", "force-stop", "retry-now"]:
        assert not driver.find_element(By.ID, control).is_enabled(), f"{control} is off for a final transaction"
    driver.save_screenshot(str(shots / "detail.png"))


def retrying_page(driver, retrying):
    driver.get(driver.current_url.split("#")[0] + "#/tx/" + retrying)
    before = wait(driver, "the sleeping op's first attempt", lambda d: attempts(d, "01", "action"))
    wait(driver, "the sleeping op's retry time and error", lambda d: op_row(d, "01", "action").find_elements(
        By.TAG_NAME, "time") and op_row(d, "01", "action").find_element(By.CLASS_NAME, "why").text)

    # A dismissed confirm() sends nothing.
    driver.find_element(By.ID, "abort").click()
    alert = wait(driver, "abort's confirm()", lambda d: d.switch_to.alert)
    assert "Abort" in alert.text, alert.text
    alert.dismiss()
    time.sleep(2.5)  # more than one live refresh
    status = driver.find_element(By.CSS_SELECTOR, "#tx-status .badge").text
    assert status == "submitted", f"a dismissed abort changed nothing: {status}"
    assert "abort" not in driver.find_element(By.ID, "history").text

    driver.find_element(By.ID, "retry-now").click()
    alert = wait(driver, "retry-now's confirm()", lambda d: d.switch_to.alert)
    assert "now" in alert.text, alert.text
    alert.accept()
    after = wait(driver, "another attempt after retry-now", lambda d: attempts(d, "01", "action") > before
                 and attempts(d, "01", "action"))
    result = driver.find_element(By.ID, "control-result").text
    assert "done" in result, f"the control's outcome is shown: {result!r}"
    history = wait(driver, "retry-now in the history", lambda d: "retry-now" in d.find_element(By.ID, "history").text
                   and d.find_element(By.ID, "history").text)
    assert "by local" in history, history
    print(f"retry-now: attempts {before} -> {after}")


def token_page(driver, server, token):
    """A server with tokens answers the page's fetches only with the pasted token."""
    driver.get(server + "/ui")
    wait(driver, "the notice asking for a token", lambda d: d.find_element(By.ID, "notice").is_displayed()
         and "token" in d.find_element(By.ID, "notice").text)
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    wait(driver, "the list with the token", lambda d: not d.find_element(By.ID, "notice").is_displayed()
         and "No transactions match." in d.find_element(By.ID, "tx-table").text)
    kept = driver.execute_script("return sessionStorage.getItem('wasmtx.token')")
    assert kept == token, "the token is kept in the tab's session storage"
    assert driver.find_element(By.ID, "token").get_attribute("value") == "", "the field does not show the token"
    driver.find_element(By.ID, "token-clear").click()
    wait(driver, "the notice again once the token is forgotten", lambda d: d.find_element(By.ID, "notice").is_displayed())


def no_policy_violations(driver):
    """The page needs nothing its Content-Security-Policy refuses, and throws nothing."""
    entries = driver.get_log("browser")
    bad = [e["message"] for e in entries if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]]
    assert not bad, f"browser console: {bad}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--failed", required=True)
    parser.add_argument("--retrying", required=True)
    parser.add_argument("--screenshots", required=True, type=pathlib.Path)
    parser.add_argument("--token-server", required=True, help="a server configured with --token")
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    args.screenshots.mkdir(parents=True, exist_ok=True)
    driver = browser()
    try:
        list_page(driver, args.server, args.failed, args.retrying, args.screenshots)
        failed_page(driver, args.failed, args.screenshots)
        retrying_page(driver, args.retrying)
        token_page(driver, args.token_server, args.token)
        no_policy_violations(driver)
    except AssertionError as e:
        driver.save_screenshot(str(args.screenshots / "failure.png"))
        sys.exit(f"UI check failed: {e}")
    finally:
        driver.quit()
    print("the admin UI passed")


if __name__ == "__main__":
    main()
