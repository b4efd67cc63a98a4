// Package bustest runs real in-process NATS servers with JetStream for
// tests: one server on a random loopback port (Start), one on a given port
// and store for restart tests (StartAt), and a JetStream cluster (Cluster).
// Every server is shut down by t.Cleanup.
package bustest

import (
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ReadyTimeout bounds how long a helper waits for a server or a cluster.
const ReadyTimeout = 10 * time.Second

// Start runs a JetStream server on 127.0.0.1 and a random port with its
// store in t.TempDir(). Connect with s.ClientURL(), or in-process.
func Start(t testing.TB) *server.Server {
	t.Helper()
	return StartAt(t, t.TempDir(), server.RANDOM_PORT)
}

// StartAt runs a JetStream server on 127.0.0.1:port (server.RANDOM_PORT
// for any) with its store in storeDir. After s.Shutdown() and
// s.WaitForShutdown(), StartAt(t, storeDir, port) with the port of s
// (ServerPort) brings the same server back with its streams.
func StartAt(t testing.TB, storeDir string, port int) *server.Server {
	t.Helper()
	return start(t, &server.Options{
		Host: "127.0.0.1", Port: port,
		JetStream: true, StoreDir: storeDir,
		NoLog: true, NoSigs: true,
	})
}

// ServerPort returns the client port s listens on.
func ServerPort(t testing.TB, s *server.Server) int {
	t.Helper()
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		t.Fatalf("server address %v is not TCP", s.Addr())
	}
	return addr.Port
}

func start(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(ReadyTimeout) {
		t.Fatalf("nats-server not ready after %s", ReadyTimeout)
	}
	return s
}

// Cluster runs an n-node JetStream cluster (n >= 3 for a quorum) on
// loopback, each node with its own t.TempDir() store, and waits until the
// cluster has a meta leader, every node is current and the leader counts
// every node as a peer to place replicas on. Connect to any
// node's ClientURL, or to all of them comma-separated.
func Cluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	if n < 1 {
		t.Fatalf("bustest.Cluster(%d): need at least one node", n)
	}
	// Route ports must be known before the first node starts: reserve them
	// by listening on port 0, all at once (a port released at once could
	// be handed out again for the next node), then release them for the
	// servers.
	ports := make([]int, n)
	listeners := make([]net.Listener, n)
	var routes []*url.URL
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("reserve a cluster port: %v", err)
		}
		listeners[i] = l
		ports[i] = l.Addr().(*net.TCPAddr).Port
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[i])})
	}
	for _, l := range listeners {
		if err := l.Close(); err != nil {
			t.Fatalf("release cluster port: %v", err)
		}
	}
	servers := make([]*server.Server, n)
	for i := range servers {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("deskrelay-test-%d", i),
			Host:       "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: t.TempDir(),
			NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "deskrelay-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes,
		})
		if err != nil {
			t.Fatalf("start cluster node %d: %v", i, err)
		}
		s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		servers[i] = s
	}
	for i, s := range servers {
		if !s.ReadyForConnections(ReadyTimeout) {
			t.Fatalf("cluster node %d not ready after %s", i, ReadyTimeout)
		}
	}
	deadline := time.Now().Add(3 * ReadyTimeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		leader, current, online := -1, 0, 0
		for i, s := range servers {
			if s.JetStreamIsLeader() {
				leader = i
				// The peers the leader places streams on: online, with
				// JetStream, and their stats received. Until all are,
				// a stream with n replicas fails with "no suitable
				// peers for placement, peer offline".
				online = len(s.JetStreamClusterPeers())
			}
			if s.JetStreamIsCurrent() {
				current++
			}
		}
		if leader >= 0 && current == n && online == n {
			return servers
		}
		if time.Now().After(deadline) {
			t.Fatalf("jetstream cluster not ready after %s: leader node %d, %d of %d nodes current, %d online for placement",
				3*ReadyTimeout, leader, current, n, online)
		}
		<-tick.C
	}
}

// ClientURLs returns the client URLs of servers, comma-separated, for
// config.NATS.URL.
func ClientURLs(servers []*server.Server) string {
	var s string
	for i, srv := range servers {
		if i > 0 {
			s += ","
		}
		s += srv.ClientURL()
	}
	return s
}

// CloseOnCleanup closes nc when the test ends, as [Close] does.
func CloseOnCleanup(t testing.TB, nc *nats.Conn) {
	t.Helper()
	t.Cleanup(func() { Close(t, nc) })
}

// Close closes nc and waits until its closed handler has run, so that
// connection handlers logging through zaptest do not log after the test
// completed. It replaces nc's closed handler; a closed nc is left alone.
func Close(t testing.TB, nc *nats.Conn) {
	t.Helper()
	if nc.IsClosed() {
		return
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	nc.Close()
	select {
	case <-closed:
	case <-time.After(ReadyTimeout):
		t.Errorf("nats connection closed handler did not run within %s", ReadyTimeout)
	}
}

// StartWith runs a JetStream server like Start after letting configure
// change its options (auth, TLS, limits).
func StartWith(t testing.TB, configure func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
	}
	configure(opts)
	return start(t, opts)
}
