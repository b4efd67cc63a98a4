package bus

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap/zaptest"

	"github.com/deskrelay/deskrelay/config"
	"github.com/deskrelay/deskrelay/internal/bus/bustest"
)

func TestConnectToAnExternalServer(t *testing.T) {
	ca := newTestCA(t)
	for _, tt := range []struct {
		name    string
		server  func(*server.Options)
		cfg     func(c *config.NATS)
		wantErr string // "" = connects
	}{
		{
			name:   "user and password",
			server: func(o *server.Options) { o.Username, o.Password = "deskrelay", "s3cret" },
			cfg:    func(c *config.NATS) { c.User, c.Password = "deskrelay", config.NewSecret("s3cret") },
		},
		{
			name:    "a wrong password is refused, and the error does not repeat it",
			server:  func(o *server.Options) { o.Username, o.Password = "deskrelay", "s3cret" },
			cfg:     func(c *config.NATS) { c.User, c.Password = "deskrelay", config.NewSecret("wrong-pw") },
			wantErr: "authorization violation",
		},
		{
			name:   "a token",
			server: func(o *server.Options) { o.Authorization = "t0ken" },
			cfg:    func(c *config.NATS) { c.Token = config.NewSecret("t0ken") },
		},
		{
			name:   "TLS with the server's CA",
			server: func(o *server.Options) { o.TLSConfig = ca.serverTLS(t); o.TLS = true },
			cfg:    func(c *config.NATS) { c.TLS.CAFile = ca.caFile },
		},
		{
			name:    "TLS without the CA is refused",
			server:  func(o *server.Options) { o.TLSConfig = ca.serverTLS(t); o.TLS = true },
			cfg:     func(c *config.NATS) {},
			wantErr: "certificate",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := bustest.StartWith(t, tt.server)
			cfg := config.NATS{URL: fmt.Sprintf("nats://%s", s.Addr().String()), ConnectTimeout: 2 * time.Second}
			tt.cfg(&cfg)
			nc, err := Connect(t.Context(), cfg, nil, zaptest.NewLogger(t))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Connect = %v", err)
				}
				nc.Close()
				return
			}
			if err == nil {
				nc.Close()
				t.Fatalf("Connect succeeded, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(strings.ToLower(err.Error()), tt.wantErr) || strings.Contains(err.Error(), "wrong-pw") {
				t.Errorf("Connect = %v, want an error containing %q and no password", err, tt.wantErr)
			}
		})
	}
}

type testCA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	caFile string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "deskrelay test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, caFile: path}
}

// serverTLS issues a certificate for 127.0.0.1 signed by the CA.
func (ca *testCA) serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}
