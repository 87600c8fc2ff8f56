package openai

import (
	"net/http"
	"testing"

	"github.com/llmkit/llmkit/internal/transport/transporttest"
	"github.com/llmkit/llmkit/llm"
)

// The http.Client NewFromConfig builds keeps DefaultMaxIdleConnsPerHost
// idle connections, and the SDK reuses them (transporttest.Reuse);
// WithMaxIdleConnsPerHost changes the count.
func TestNewFromConfigTransport(t *testing.T) {
	transporttest.Reuse(t, `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, func(url string) (llm.Client, *http.Client) {
		c, err := NewFromConfig("sk-test", url+"/v1")
		if err != nil {
			t.Fatal(err)
		}
		return c, c.httpClient
	})

	c, err := NewFromConfig("sk-test", "http://127.0.0.1:1/v1", WithMaxIdleConnsPerHost(8))
	if err != nil {
		t.Fatal(err)
	}
	if n := c.httpClient.Transport.(*http.Transport).MaxIdleConnsPerHost; n != 8 {
		t.Errorf("WithMaxIdleConnsPerHost(8): %d", n)
	}
	if _, err := NewFromConfig("sk-test", "http://127.0.0.1:1/v1", WithMaxIdleConnsPerHost(0)); err == nil {
		t.Error("WithMaxIdleConnsPerHost(0): want an error")
	}
}
