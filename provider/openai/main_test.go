package openai_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/goleak"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/provider/openai"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newTestClient starts the translating server over upstream and returns
// the adapter pointed at it.
func newTestClient(t *testing.T, h http.Handler, opts ...openai.Option) *openai.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := openai.New(sdkClientFor(t, srv.URL), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	llmtest.Run(t, func(t *testing.T, upstream llm.Client) llm.Client {
		return newTestClient(t, handler(upstream))
	})
}

// TestConformanceCompatServer runs the suite against a server that, like
// many OpenAI-compatible ones, sends no ids, no created time and no usage.
func TestConformanceCompatServer(t *testing.T) {
	llmtest.Run(t, func(t *testing.T, upstream llm.Client) llm.Client {
		return newTestClient(t, &server{upstream: upstream, compat: true})
	})
}
