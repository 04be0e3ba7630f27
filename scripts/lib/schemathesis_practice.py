"""Creates an approved practice with an API token on a running restdose, the way an operator
and a practice do it: sign-up form, verification link from the file outbox, approval with
`restdose admin practices approve`, login, "API tokens" page. Prints the token (rdk_...).

Used by scripts/lib/schemathesis.sh; runs in its venv (requests comes with schemathesis).

    python schemathesis_practice.py BASE_URL OUTBOX_DIR RESTDOSE_BINARY
"""

import email
import email.policy
import pathlib
import re
import subprocess
import sys
import time

import requests

PASSWORD = "schemathesis-practice-password"
ADDRESS = "practice@schemathesis.example.org"


def csrf(session, base, page):
    html = session.get(base + page, timeout=10).text
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    if not match:
        sys.exit(f"no CSRF field on {page}")
    return match.group(1)


def submit(session, base, page, action, fields):
    data = {"csrf": csrf(session, base, page), **fields}
    return session.post(base + action, data=data, allow_redirects=False, timeout=30)


def verify_link(outbox):
    deadline = time.time() + 30
    while time.time() < deadline:
        for path in sorted(pathlib.Path(outbox).glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if ADDRESS not in str(message.get("To", "")):
                continue
            for part in message.walk():
                if part.get_content_type() == "text/plain":
                    found = re.search(r"/portal/verify/[A-Za-z0-9_-]+", part.get_content())
                    if found:
                        return found.group(0)
        time.sleep(0.2)
    sys.exit("no verification mail in the outbox")


def main():
    base, outbox, binary = sys.argv[1], sys.argv[2], sys.argv[3]
    session = requests.Session()
    response = submit(
        session,
        base,
        "/portal/signup",
        "/portal/signup",
        {
            "name": "Praxis Schemathesis",
            "street": "Invalidenstraße 1",
            "postcode": "10115",
            "city": "Berlin",
            "phone": "030 1234567",
            "email": ADDRESS,
            "password": PASSWORD,
        },
    )
    if response.status_code != 200:
        sys.exit(f"practice sign-up failed: {response.status_code}")
    verified = requests.post(base + verify_link(outbox), allow_redirects=False, timeout=30)
    if verified.status_code != 200:
        sys.exit(f"verification failed: {verified.status_code}")
    listing = subprocess.run(
        [binary, "admin", "practices", "list"], check=True, capture_output=True, text=True
    ).stdout
    ids = [
        m.group(0)
        for line in listing.splitlines()
        if ADDRESS in line
        for m in [re.search(r"[0-9a-f]{8}-[0-9a-f-]{27}", line)]
        if m
    ]
    if len(ids) != 1:
        sys.exit(f"practice not found in `restdose admin practices list`:\n{listing}")
    subprocess.run(
        [binary, "admin", "practices", "approve", ids[0]], check=True, capture_output=True
    )
    login = submit(
        session, base, "/portal/login", "/portal/login", {"email": ADDRESS, "password": PASSWORD}
    )
    if login.status_code != 303:
        sys.exit(f"login failed: {login.status_code}")
    created = submit(session, base, "/portal/tokens", "/portal/tokens", {"name": "schemathesis"})
    token = re.search(r'value="(rdk_[A-Za-z0-9_-]+)"', created.text)
    if created.status_code != 200 or not token:
        sys.exit(f"token creation failed: {created.status_code}")
    print(token.group(1))


if __name__ == "__main__":
    main()
