"""The seed document's two Locust user classes, against examples/service.

Both post to the service's POST /generate with the seed's JSON body
({"prompt": ...}, nothing else: no temperature, no endpoint) and the seed's
X-API-Key header:

- LLMUser waits 1 to 5 s between calls and always sends the seed's test
  prompt.
- LoadTest waits 1 to 3 s and mixes the seed's short, medium and long
  prompts with weights 3:2:1.

Run headless for a bounded time, for example against three replicas behind
nginx (the drill in examples/drill does exactly this):

    locust -f examples/loadtest/locustfile.py --headless -u 30 -r 30 -t 60s \
        --host http://127.0.0.1:8080 --csv /tmp/seed

LLMKIT_LOCUST_API_KEY replaces the seed's key ("test-key") when the service
is configured with other keys. Locust counts every non-2xx answer and every
connection error as a failure (see the --csv *_failures.csv file).
"""

import os

from locust import HttpUser, between, task

# The seed's header: one key for every simulated user.
API_KEY = os.environ.get("LLMKIT_LOCUST_API_KEY", "test-key")

# The seed's prompts, verbatim: a test prompt for LLMUser, and a short, a
# medium and a long one for LoadTest ("simple prompt", "an example of a
# medium-length prompt", "an example of a longer prompt with context").
TEST_PROMPT = "测试提示词"
SHORT_PROMPT = "简单提示词"
MEDIUM_PROMPT = "中等长度的提示词示例"
LONG_PROMPT = "较长的提示词带有上下文信息的示例"


def generate(client, prompt, headers):
    """POST /generate with the seed's body: the prompt and nothing else."""
    return client.post("/generate", json={"prompt": prompt}, headers=headers)


class LLMUser(HttpUser):
    """The seed's first script: one task, one prompt, 1-5 s apart."""

    wait_time = between(1, 5)

    @task
    def generate_text(self):
        generate(self.client, TEST_PROMPT, {"X-API-Key": API_KEY})


class LoadTest(HttpUser):
    """The seed's stress script: three prompt lengths, weighted 3:2:1, 1-3 s apart."""

    wait_time = between(1, 3)

    def on_start(self):
        self.headers = {"X-API-Key": API_KEY}
        self.test_prompts = [SHORT_PROMPT, MEDIUM_PROMPT, LONG_PROMPT]

    @task(3)
    def test_short_prompt(self):
        generate(self.client, self.test_prompts[0], self.headers)

    @task(2)
    def test_medium_prompt(self):
        generate(self.client, self.test_prompts[1], self.headers)

    @task(1)
    def test_long_prompt(self):
        generate(self.client, self.test_prompts[2], self.headers)
