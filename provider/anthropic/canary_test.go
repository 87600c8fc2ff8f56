package anthropic

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// TestCanaryKeyNeverInErrors sends a canary key to servers that echo it
// back in every way they can, and checks that the text of every error we
// return, and of our own cause, is free of it.
func TestCanaryKeyNeverInErrors(t *testing.T) {
	echoing := func(status int, body func(key string) string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := r.Header.Get("X-Api-Key")
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Request-Id", "req_"+key) // not a token: never quoted
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body(key)))
		})
	}
	streamEcho := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\"}}\n\n")
		fmt.Fprintf(w, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x-api-key: %s\"}}\n\n", r.Header.Get("X-Api-Key"))
	})
	authUp := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindAuth)}}
	echoTranslator := handler(authUp)
	echoTranslator.echoKey = true
	servers := map[string]http.Handler{
		"auth error quoting the key": echoTranslator,
		"message with the key": echoing(401, func(k string) string {
			return `{"type":"error","error":{"type":"authentication_error","message":"invalid key ` + k + `"}}`
		}),
		"header dump in the message": echoing(400, func(k string) string {
			return `{"type":"error","error":{"type":"invalid_request_error","message":"X-Api-Key: ` + k + `; Authorization: Bearer ` + k + `"}}`
		}),
		"html page with the key": echoing(502, func(k string) string { return "<html>bad gateway for " + k + "</html>" }),
		"unknown envelope":       echoing(500, func(k string) string { return `{"detail":"` + k + `"}` }),
		"stream error event":     streamEcho,
	}
	for name, h := range servers {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", name, stream), func(t *testing.T) {
				srv := serve(t, h)
				c, err := New(sdkClient(srv, option.WithAPIKey(canary)))
				if err != nil {
					t.Fatal(err)
				}
				req := llm.Prompt("hi")
				if stream {
					req.Stream = func(llm.Chunk) error { return nil }
				}
				resp, err := c.Generate(context.Background(), req)
				var e *llm.Error
				if resp != nil || !errors.As(err, &e) {
					t.Fatalf("got %v, %v; want an *llm.Error", resp, err)
				}
				texts := []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%q", err), e.Message}
				var cause *apiErrorCause
				if errors.As(err, &cause) {
					texts = append(texts, cause.Error())
				}
				for _, s := range texts {
					if strings.Contains(s, canary[len("sk-ant-"):]) {
						t.Fatalf("the key leaked: %s", s)
					}
				}
			})
		}
	}
}

func TestConfigErrorsDoNotQuoteSecrets(t *testing.T) {
	_, err := NewFromConfig(canary, "::not a url?key="+canary)
	if err == nil || strings.Contains(err.Error(), "canary") {
		t.Fatalf("bad base URL: %v", err)
	}
}

func TestRequestIDQuoted(t *testing.T) {
	srv, _ := rawServer(t, 500, map[string]string{"Request-Id": "req_011CSHoEeqs5C35K2UUqR7Fy"},
		`{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`)
	_, err := newAdapter(t, srv).Generate(context.Background(), llm.Prompt("hi"))
	if err == nil || !strings.Contains(err.Error(), "(request-id req_011CSHoEeqs5C35K2UUqR7Fy)") {
		t.Fatalf("%v: want the request id quoted for support tickets", err)
	}
}
