package anthropic

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
	transporttest.Reuse(t, `{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}`, func(url string) (llm.Client, *http.Client) {
		c, err := NewFromConfig("sk-ant-test", url)
		if err != nil {
			t.Fatal(err)
		}
		return c, c.httpClient
	})

	c, err := NewFromConfig("sk-ant-test", "http://127.0.0.1:1", WithMaxIdleConnsPerHost(8))
	if err != nil {
		t.Fatal(err)
	}
	if n := c.httpClient.Transport.(*http.Transport).MaxIdleConnsPerHost; n != 8 {
		t.Errorf("WithMaxIdleConnsPerHost(8): %d", n)
	}
	if _, err := NewFromConfig("sk-ant-test", "http://127.0.0.1:1", WithMaxIdleConnsPerHost(0)); err == nil {
		t.Error("WithMaxIdleConnsPerHost(0): want an error")
	}
}
