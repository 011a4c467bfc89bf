// Command apiserver-harness runs a real kube-apiserver, with an embedded etcd,
// on loopback for meshc's tests, in the manner of controller-runtime's envtest.
//
// It picks free ports, keeps everything in one temporary directory, writes a
// kubeconfig for a static admin token, prints one line
//
//	ready <kubeconfig path>
//
// on stdout once /readyz answers, and shuts both servers down when it receives
// SIGTERM or SIGINT or when its standard input closes (so a test that dies
// still takes the servers with it), removing the directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "apiserver-harness: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	keep := flag.Bool("keep", false, "keep the data directory on exit (for debugging)")
	flag.Parse()

	dir, err := os.MkdirTemp("", "meshc-apiserver-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}

	files, err := writeCredentials(dir)
	if err != nil {
		return err
	}
	etcd, err := startEtcd(filepath.Join(dir, "etcd"))
	if err != nil {
		return err
	}
	defer etcd.Close()

	port, err := freePort()
	if err != nil {
		return err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, files); err != nil {
		return err
	}

	// kube-apiserver's command owns the process's signal handling: its context
	// ends on the first SIGTERM/SIGINT and it exits at once on a second. A closed
	// stdin is turned into that same first signal, so both ways stop the server
	// through its own graceful shutdown.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}()
	stopped := make(chan os.Signal, 1)
	signal.Notify(stopped, syscall.SIGTERM, syscall.SIGINT)

	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(apiserverArgs(dir, port, etcd.endpoint, files))
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := waitReady(ctx, server, files, done); err != nil {
		return err
	}
	fmt.Printf("ready %s\n", kubeconfig)

	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("kube-apiserver stopped: %w", err)
		}
		return fmt.Errorf("kube-apiserver stopped without being asked to")
	case <-stopped:
	}
	select {
	case err := <-done:
		if err != nil {
			fmt.Fprintf(os.Stderr, "apiserver-harness: kube-apiserver shutdown: %v\n", err)
		}
	case <-time.After(30 * time.Second):
		fmt.Fprintln(os.Stderr, "apiserver-harness: kube-apiserver did not stop within 30s; exiting anyway")
	}
	return nil
}

// apiserverArgs are the flags of a single-node control plane without the
// controller manager: RBAC as the only authorizer (as on every managed
// cluster), a service-account issuer and key so TokenRequest and TokenReview
// work, and a static token for the admin.
func apiserverArgs(dir string, port int, etcdEndpoint string, f credentialFiles) []string {
	return []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// The `kubernetes` Service's endpoints would name the advertise
		// address, which the reconciler refuses for loopback; nothing in the
		// tests reaches the API server through that Service.
		"--endpoint-reconciler-type=none",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--tls-cert-file=" + f.servingCert,
		"--tls-private-key-file=" + f.servingKey,
		"--etcd-servers=" + etcdEndpoint,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + f.serviceAccountKey,
		"--service-account-signing-key-file=" + f.serviceAccountKey,
		"--token-auth-file=" + f.tokenFile,
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		// No controller manager runs, so no namespace gets its `default`
		// ServiceAccount; the ServiceAccount admission plugin would then refuse
		// every Pod. envtest leaves it out for the same reason.
		"--disable-admission-plugins=ServiceAccount",
		"--v=0",
	}
}
