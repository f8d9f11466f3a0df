"""Every rule of the built-in packs, alone, on a positive and a hard negative real-looking sample.

A positive is the code the rule exists for; a hard negative is the nearest thing that must not
fire: the same call made safely, the same words in a comment, a test file, another provider's
key. The provenance rule needs an index (tests/policy/test_policy_detectors.py) and the
release-artifact rule a real tarball (tests/policy/test_artifact_rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from policytools import PACKS, aws_key, openai_key, pem_body, rule, scan

from custodes.subject import SubjectKind


@dataclass(frozen=True)
class Case:
    path: str
    code: str
    lines: tuple[int, int] | None = None  # where a positive fires, when it matters


POSITIVE: dict[str, list[Case]] = {}
NEGATIVE: dict[str, list[Case]] = {}


def cases(rule_id: str, positive: list[Case], negative: list[Case]) -> None:
    POSITIVE[rule_id] = positive
    NEGATIVE[rule_id] = negative


cases(
    "enterprise.secrets",
    [Case("src/settings.py", f'AWS_ACCESS_KEY_ID = "{aws_key(1)}"\nREGION = "eu-west-1"\n', (1, 1))],
    [Case("src/settings.py", 'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"  # AWS docs\n')],
)
cases(
    "enterprise.python-network-call",
    [
        Case(
            "src/billing/client.py",
            "import requests\n\n\ndef invoice(number):\n"
            '    reply = requests.get(f"https://billing.internal/invoices/{number}", timeout=5)\n'
            "    return reply.json()\n",
            (5, 5),
        ),
        Case(
            "app/feeds.py",
            "import aiohttp\n\n\nasync def pull(url):\n"
            "    async with aiohttp.ClientSession() as session:\n"
            "        async with session.get(url) as reply:\n"
            "            return await reply.text()\n",
            (5, 5),
        ),
    ],
    [
        # Production code that only talks about requests, and a test that makes one.
        Case(
            "src/billing/client.py",
            "from billing import cache\n\n# requests.get is done by the gateway, not here\n"
            'ERROR = "requests.get failed"\n\n\ndef invoice(number):\n'
            "    return cache.get(number)\n",
        ),
        Case(
            "tests/test_client.py",
            "import requests\n\n\ndef test_live():\n"
            '    assert requests.get("http://localhost:8080/health").ok\n',
        ),
    ],
)
cases(
    "enterprise.js-network-call",
    [
        Case(
            "src/api/items.ts",
            'import axios from "axios";\n\nexport async function load(id: string) {\n'
            "  const res = await axios.get(`/api/items/${id}`);\n  return res.data;\n}\n",
            (4, 4),
        ),
        Case(
            "web/status.js",
            "export async function status() {\n"
            '  const res = await fetch("https://status.example.com/api");\n'
            "  return res.json();\n}\n",
            (2, 2),
        ),
    ],
    [
        Case(
            "src/api/items.ts",
            "const cache = new Map<string, Item>();\n// fetch() happens in the worker\n"
            "export function load(id: string) {\n  return cache.get(id);\n}\n",
        ),
        Case(
            "src/api/items.test.ts",
            'import axios from "axios";\n\ntest("live", async () => {\n'
            '  expect((await axios.get("/health")).status).toBe(200);\n});\n',
        ),
    ],
)
cases(
    "enterprise.python-tls-verify-disabled",
    [
        Case(
            "src/sync.py",
            "import requests as http\n\n\ndef push(url, body):\n"
            "    return http.post(url, json=body, verify=False)\n",
            (5, 5),
        ),
        Case(
            "src/sync.py",
            "import httpx\n\nclient = httpx.Client(verify=False, timeout=10)\n",
            (3, 3),
        ),
    ],
    [
        Case(
            "src/sync.py",
            "import requests\n\n\ndef push(url, body):\n"
            '    return requests.post(url, json=body, verify="/etc/ssl/corp-ca.pem")\n',
        ),
        # Not a network library: verify means something else there.
        Case("src/train.py", "from sklearn import svm\n\nmodel = svm.fit(X, y, verify=False)\n"),
    ],
)
cases(
    "enterprise.python-unverified-tls-context",
    [Case("src/mail.py", "import ssl\n\ncontext = ssl._create_unverified_context()\n", (3, 3))],
    [Case("src/mail.py", "import ssl\n\ncontext = ssl.create_default_context()\n")],
)
cases(
    "enterprise.js-tls-verify-disabled",
    [
        Case(
            "src/proxy.js",
            'const https = require("https");\n\n'
            "const agent = new https.Agent({ keepAlive: true, rejectUnauthorized: false });\n",
            (3, 3),
        )
    ],
    [
        Case(
            "src/proxy.js",
            'const https = require("https");\n// never rejectUnauthorized: false in production\n'
            "const agent = new https.Agent({ keepAlive: true, rejectUnauthorized: true });\n",
        )
    ],
)
cases(
    "enterprise.tls-verify-disabled-env",
    [
        Case("Dockerfile", "FROM node:22\nENV NODE_TLS_REJECT_UNAUTHORIZED=0\nCMD [\"node\", \"app.js\"]\n", (2, 2)),
        Case("src/boot.js", 'process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0";\n', (1, 1)),
    ],
    [
        Case("Dockerfile", "FROM node:22\nENV NODE_TLS_REJECT_UNAUTHORIZED=1\n"),
        Case("docs/tls.md", "Never set NODE_TLS_REJECT_UNAUTHORIZED=0.5 or anything like it.\n"),
    ],
)
cases(
    "enterprise.python-eval-dynamic",
    [Case("src/calc.py", "def evaluate(expression):\n    return eval(expression)\n", (2, 2))],
    [
        Case(
            "src/calc.py",
            'import ast\n\n\ndef evaluate(expression):\n    eval("1 + 1")\n'
            "    return ast.literal_eval(expression)\n",
        )
    ],
)
cases(
    "enterprise.js-eval-dynamic",
    [Case("src/rules.js", "export function run(expr) {\n  return eval(expr);\n}\n", (2, 2))],
    [Case("src/rules.js", 'export function run(expr) {\n  return JSON.parse(expr) ?? eval("0");\n}\n')],
)
cases(
    "enterprise.js-function-constructor",
    [Case("src/rules.ts", 'export const compile = (body: string) => new Function("input", body);\n', (1, 1))],
    [Case("src/rules.ts", 'export const identity = new Function("input", "return input");\n')],
)
cases(
    "enterprise.python-shell-injection",
    [
        Case(
            "src/backup.py",
            "import subprocess\n\n\ndef archive(name, folder):\n"
            '    subprocess.run(f"tar czf {name}.tgz {folder}", shell=True, check=True)\n',
            (5, 5),
        )
    ],
    [
        Case(
            "src/backup.py",
            "import subprocess\n\n\ndef archive(name, folder):\n"
            '    subprocess.run(["tar", "czf", f"{name}.tgz", folder], check=True)\n'
            '    subprocess.run("sync", shell=True)\n',
        )
    ],
)
cases(
    "enterprise.python-os-system",
    [Case("src/clean.py", "import os\n\n\ndef wipe(path):\n    os.system('rm -rf ' + path)\n", (5, 5))],
    [Case("src/clean.py", "import os\n\n\ndef wipe(path):\n    os.system('clear')\n    os.remove(path)\n")],
)
cases(
    "enterprise.js-shell-injection",
    [
        Case(
            "src/git.js",
            'const { exec } = require("node:child_process");\n\n'
            "function log(branch, cb) {\n  exec(`git log ${branch}`, cb);\n}\n",
            (4, 4),
        )
    ],
    [
        Case(
            "src/git.js",
            'const { exec, execFile } = require("child_process");\n\n'
            'function log(branch, cb) {\n  execFile("git", ["log", branch], cb);\n'
            '  exec("git status", cb);\n}\n',
        )
    ],
)
cases(
    "enterprise.private-key-file",
    [
        Case(
            "deploy/id_rsa",
            f"-----BEGIN RSA PRIVATE KEY-----\n{pem_body(7)}\n-----END RSA PRIVATE KEY-----\n",
            (1, 1),
        )
    ],
    [
        Case(
            "certs/server.pem",
            f"-----BEGIN CERTIFICATE-----\n{pem_body(8)}\n-----END CERTIFICATE-----\n",
        ),
        # The header in a file that is not a key file: the secrets rule's job, not this one.
        Case("docs/keys.md", "A key starts with\n-----BEGIN RSA PRIVATE KEY-----\n"),
    ],
)

_CLIENT = "from openai import OpenAI\n\nclient = OpenAI()\n\n\n"
cases(
    "owasp-llm.python-prompt-formatting",
    [
        Case(
            "src/support/bot.py",
            _CLIENT + "def answer(question, company):\n"
            "    reply = client.chat.completions.create(\n"
            '        model="gpt-4o",\n'
            '        messages=[{"role": "system", "content": f"You help {company} customers. {question}"}],\n'
            "        max_tokens=400,\n    )\n    return reply.choices[0].message.content\n",
            (7, 11),
        ),
        Case(
            "src/support/claude.py",
            "import anthropic\n\nclaude = anthropic.Anthropic()\n\n\ndef ask(doc):\n"
            "    return claude.messages.create(model=MODEL, max_tokens=300,\n"
            '        messages=[{"role": "user", "content": "Summarise: " + doc}])\n',
            (7, 8),
        ),
    ],
    [
        Case(
            "src/support/bot.py",
            _CLIENT + 'SYSTEM = "You help our customers."\n\n\ndef answer(question):\n'
            "    return client.chat.completions.create(\n"
            '        model="gpt-4o",\n'
            '        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],\n'
            "        max_tokens=400,\n    )\n",
        )
    ],
)
cases(
    "owasp-llm.js-prompt-formatting",
    [
        Case(
            "src/summarise.ts",
            'import OpenAI from "openai";\nconst openai = new OpenAI();\n\n'
            "export async function summarise(doc: string) {\n"
            "  const r = await openai.chat.completions.create({\n"
            '    model: "gpt-4o", max_tokens: 200,\n'
            '    messages: [{ role: "user", content: `Summarise this: ${doc}` }],\n  });\n'
            "  return r.choices[0].message.content;\n}\n",
            (5, 8),
        )
    ],
    [
        Case(
            "src/summarise.ts",
            'import OpenAI from "openai";\nconst openai = new OpenAI();\n'
            'const SYSTEM = "Summarise the user\'s document.";\n\n'
            "export async function summarise(doc: string) {\n"
            "  return openai.chat.completions.create({\n"
            '    model: "gpt-4o", max_tokens: 200,\n'
            '    messages: [{ role: "system", content: SYSTEM }, { role: "user", content: doc }],\n'
            "  });\n}\n",
        )
    ],
)
cases(
    "owasp-llm.ai-provider-key",
    [Case("src/llm.py", f'OPENAI_API_KEY = "{openai_key(3)}"\n', (1, 1))],
    # A credential, but not an AI provider's: the enterprise secrets rule reports it.
    [Case("src/llm.py", f'AWS_ACCESS_KEY_ID = "{aws_key(4)}"\n')],
)
cases(
    "owasp-llm.trust-remote-code",
    [
        Case(
            "scripts/load.py",
            "from transformers import AutoModelForCausalLM\n\n"
            'model = AutoModelForCausalLM.from_pretrained("acme/coder-7b", revision="4f1c2a9",\n'
            "    trust_remote_code=True)\n",
            (3, 4),
        )
    ],
    [
        Case(
            "scripts/load.py",
            "from transformers import AutoModelForCausalLM\n\n"
            'model = AutoModelForCausalLM.from_pretrained("acme/coder-7b", revision="4f1c2a9",\n'
            "    trust_remote_code=False)\n",
        )
    ],
)
cases(
    "owasp-llm.unpinned-model-download",
    [
        Case(
            "src/embed.py",
            "from transformers import AutoTokenizer\n\n"
            'tokenizer = AutoTokenizer.from_pretrained("meta-llama/Meta-Llama-3-8B")\n',
            (3, 3),
        ),
        Case(
            "src/embed.py",
            "from huggingface_hub import hf_hub_download\n\n"
            'path = hf_hub_download(repo_id="acme/weights", filename="model.safetensors")\n',
            (3, 3),
        ),
    ],
    [
        Case(
            "src/embed.py",
            "from transformers import AutoTokenizer\n\n"
            'tokenizer = AutoTokenizer.from_pretrained("meta-llama/Meta-Llama-3-8B",\n'
            '    revision="62bd457b6fe961a42a631306577e622c83876cb6")\n',
        )
    ],
)
cases(
    "owasp-llm.python-model-output-execution",
    [
        Case(
            "src/agent/run.py",
            _CLIENT + "def act(task):\n"
            "    reply = client.chat.completions.create(model=MODEL, max_tokens=500,\n"
            '        messages=[{"role": "user", "content": task}])\n'
            "    code = reply.choices[0].message.content\n    exec(code)\n",
            (10, 10),
        ),
        Case(
            "src/agent/sql.py",
            "import sqlite3\nimport litellm\n\n\ndef query(question, db):\n"
            '    answer = litellm.completion(model=MODEL, messages=[{"role": "user", "content": question}])\n'
            "    sql = answer.choices[0].message.content\n"
            "    return db.cursor().execute(sql).fetchall()\n",
            (8, 8),
        ),
    ],
    [
        Case(
            "src/agent/sql.py",
            "import json\nimport litellm\n\n\ndef store(question, db):\n"
            '    answer = litellm.completion(model=MODEL, messages=[{"role": "user", "content": question}])\n'
            "    text = answer.choices[0].message.content\n"
            '    db.execute("INSERT INTO answers (body) VALUES (?)", (text,))\n'
            "    return json.loads(text)\n",
        )
    ],
)
cases(
    "owasp-llm.js-model-output-execution",
    [
        Case(
            "src/agent.js",
            'import OpenAI from "openai";\nconst client = new OpenAI();\n\n'
            "export async function act(task) {\n"
            '  const r = await client.chat.completions.create({ model: "gpt-4o", max_tokens: 300,\n'
            '    messages: [{ role: "user", content: task }] });\n'
            "  return eval(r.choices[0].message.content);\n}\n",
            (7, 7),
        )
    ],
    [
        Case(
            "src/agent.js",
            'import OpenAI from "openai";\nconst client = new OpenAI();\n\n'
            "export async function act(task, db) {\n"
            '  const r = await client.chat.completions.create({ model: "gpt-4o", max_tokens: 300,\n'
            '    messages: [{ role: "user", content: task }] });\n'
            "  const text = r.choices[0].message.content;\n"
            '  await db.query("INSERT INTO answers (body) VALUES ($1)", [text]);\n'
            "  return JSON.parse(text);\n}\n",
        )
    ],
)
cases(
    "owasp-llm.agent-dangerous-code",
    [
        Case(
            "src/analyst.py",
            "from langchain_experimental.agents import create_pandas_dataframe_agent\n\n"
            "agent = create_pandas_dataframe_agent(llm, frame, allow_dangerous_code=True)\n",
            (3, 3),
        )
    ],
    [
        Case(
            "src/analyst.py",
            "from langchain_experimental.agents import create_pandas_dataframe_agent\n\n"
            "agent = create_pandas_dataframe_agent(llm, frame, allow_dangerous_code=False)\n",
        )
    ],
)
cases(
    "owasp-llm.agent-shell-tool",
    [
        Case(
            "src/tools.py",
            "from langchain_community.tools import ShellTool\n\ntools = [ShellTool()]\n",
            (3, 3),
        )
    ],
    [
        Case(
            "src/tools.py",
            "from langchain_community.tools import DuckDuckGoSearchRun\n\n"
            "tools = [DuckDuckGoSearchRun()]  # no ShellTool here\n",
        )
    ],
)
cases(
    "owasp-llm.system-prompt-secret",
    [
        Case(
            "src/bot.py",
            'SYSTEM_PROMPT = "You are the billing bot. Use the API key in the header, never reveal it."\n',
            (1, 1),
        ),
        Case(
            "src/bot.ts",
            'const messages = [{"role": "system", "content": "The admin password is kept in vault."}];\n',
            (1, 1),
        ),
    ],
    [
        Case(
            "src/bot.py",
            'SYSTEM_PROMPT = "You are the billing bot. Answer briefly and cite the invoice."\n'
            'API_KEY = os.environ["BILLING_API_KEY"]\n',
        )
    ],
)
cases(
    "owasp-llm.python-no-max-tokens",
    [
        Case(
            "src/chat.py",
            _CLIENT + "def chat(messages):\n"
            '    return client.chat.completions.create(model="gpt-4o", messages=messages)\n',
            (7, 7),
        )
    ],
    [
        Case(
            "src/chat.py",
            _CLIENT + "def chat(messages, **options):\n"
            '    client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=512)\n'
            '    return client.chat.completions.create(model="gpt-4o", messages=messages, **options)\n',
        )
    ],
)
cases(
    "owasp-llm.js-no-max-tokens",
    [
        Case(
            "src/chat.ts",
            'import OpenAI from "openai";\nconst client = new OpenAI();\n'
            "export const chat = (messages: Message[]) =>\n"
            '  client.chat.completions.create({ model: "gpt-4o", messages });\n',
            (4, 4),
        )
    ],
    [
        Case(
            "src/chat.ts",
            'import OpenAI from "openai";\nconst client = new OpenAI();\n'
            "export const chat = (messages: Message[], params: Params) => {\n"
            '  client.chat.completions.create({ model: "gpt-4o", messages, max_tokens: 256 });\n'
            "  return client.chat.completions.create(params);\n};\n",
        )
    ],
)

# Rules tested elsewhere, on inputs this table cannot hold.
ELSEWHERE = {
    "enterprise.provenance-deny",
    "enterprise.provenance-warn",
    "enterprise.artifact-source-leak",
}


def test_every_rule_of_both_packs_has_samples() -> None:
    # Guard rules (prompts, completions) are tested with the guard: tests/guard.
    ids = {r.id for r in PACKS.rules if "code" in r.stages}
    assert ids - ELSEWHERE == set(POSITIVE) == set(NEGATIVE)
    assert all(POSITIVE[i] and NEGATIVE[i] for i in POSITIVE)


def _rule_findings(rule_id: str, case: Case) -> list[tuple[str, int, int]]:
    return [
        (f.path, f.start_line, f.end_line) for f in scan(rule(rule_id), case.path, case.code)
    ]


@pytest.mark.parametrize(
    ("rule_id", "case"), [(i, c) for i, cs in POSITIVE.items() for c in cs]
)
def test_positive_sample_fires(rule_id: str, case: Case) -> None:
    found = _rule_findings(rule_id, case)
    assert found, f"{rule_id} missed {case.path}"
    if case.lines is not None:
        assert (case.path, *case.lines) in found


@pytest.mark.parametrize(
    ("rule_id", "case"), [(i, c) for i, cs in NEGATIVE.items() for c in cs]
)
def test_hard_negative_sample_does_not_fire(rule_id: str, case: Case) -> None:
    assert _rule_findings(rule_id, case) == []


@pytest.mark.parametrize(
    ("rule_id", "case"), [(i, c) for i, cs in POSITIVE.items() for c in cs]
)
def test_findings_carry_the_rule_controls_and_no_clear_text(rule_id: str, case: Case) -> None:
    (pack_rule,) = [r for r in PACKS.rules if r.id == rule_id]
    for finding in scan(rule(rule_id), case.path, case.code):
        assert set(pack_rule.controls) <= set(finding.controls)
        if finding.kind == "policy":
            assert finding.rule == rule_id
            assert finding.message == pack_rule.message
            assert len(finding.match_hash) == 64
        assert finding.preview is None or len(finding.preview) <= 80
        # No preview repeats a whole line of the sample.
        for line in case.code.splitlines():
            if len(line.strip()) > 12:
                assert line.strip() not in (finding.preview or "")


def test_a_hunk_reports_original_line_numbers() -> None:
    # The added lines 40 and 41 of a file, as a diff hands them over.
    from custodes.subject import Subject

    hunk = Subject(
        path="src/clean.py",
        text="    if force:\n        os.system('rm -rf ' + path)\n",
        kind=SubjectKind.HUNK,
        line_numbers=(40, 41),
        language="python",
    )
    from custodes.detectors.rules import PolicyDetector

    (finding,) = PolicyDetector(rule("enterprise.python-os-system")).scan(hunk)
    assert (finding.start_line, finding.end_line) == (41, 41)
    assert finding.preview == "os.system(…)"
