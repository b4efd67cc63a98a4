package jsm

import (
	"io"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/deskrelay/deskrelay/internal/fixture"
)

// BenchmarkWebhook measures what the ingress does with a Jira Service
// Management webhook: Verify (HMAC-SHA256 of the body), Normalize,
// Validate.
//
//	go test -run='^$' -bench=Webhook -benchmem ./connectors/jsm
func BenchmarkWebhook(b *testing.B) {
	wh := buildWebhook(b, siteOptions())
	// As in production (info level): the test logger would log at debug.
	wh.log = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.InfoLevel))
	for _, name := range []string{"webhook_issue_created", "webhook_issue_updated"} {
		body := fixture.Read(b, "testdata", name+".json")
		h := fixture.Header(b, "testdata", name+".headers")
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := wh.Verify(h, body); err != nil {
					b.Fatal(err)
				}
				tk, err := wh.Normalize(b.Context(), h, body)
				if err != nil {
					b.Fatal(err)
				}
				tk.Source = "jsm"
				if err := tk.Validate(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
