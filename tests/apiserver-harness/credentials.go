package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// credentialFiles are the paths the API server flags and the kubeconfig name.
type credentialFiles struct {
	caCert            string
	servingCert       string
	servingKey        string
	serviceAccountKey string
	tokenFile         string
	adminToken        string
}

// writeCredentials makes a CA and a serving certificate for 127.0.0.1 (so
// clients verify the server rather than skipping TLS checks), the
// service-account signing key, and a static token for an admin in
// system:masters, whom RBAC allows everything.
func writeCredentials(dir string) (credentialFiles, error) {
	f := credentialFiles{
		caCert:            filepath.Join(dir, "ca.crt"),
		servingCert:       filepath.Join(dir, "serving.crt"),
		servingKey:        filepath.Join(dir, "serving.key"),
		serviceAccountKey: filepath.Join(dir, "service-account.key"),
		tokenFile:         filepath.Join(dir, "tokens.csv"),
	}
	if err := writeServingCerts(f); err != nil {
		return f, err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return f, fmt.Errorf("service-account key: %w", err)
	}
	saDER := x509.MarshalPKCS1PrivateKey(saKey)
	if err := writePEM(f.serviceAccountKey, "RSA PRIVATE KEY", saDER); err != nil {
		return f, err
	}
	token := make([]byte, 24)
	if _, err := rand.Read(token); err != nil {
		return f, fmt.Errorf("admin token: %w", err)
	}
	f.adminToken = hex.EncodeToString(token)
	line := fmt.Sprintf("%s,admin,admin-uid,\"system:masters\"\n", f.adminToken)
	if err := os.WriteFile(f.tokenFile, []byte(line), 0o600); err != nil {
		return f, fmt.Errorf("token file: %w", err)
	}
	return f, nil
}

func writeServingCerts(f credentialFiles) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("CA key: %w", err)
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "meshc-apiserver-harness-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("serving key: %w", err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("serving key: %w", err)
	}
	if err := writePEM(f.caCert, "CERTIFICATE", caDER); err != nil {
		return err
	}
	if err := writePEM(f.servingCert, "CERTIFICATE", der); err != nil {
		return err
	}
	return writePEM(f.servingKey, "EC PRIVATE KEY", keyDER)
}

func writePEM(path, kind string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeKubeconfig names the admin token and the harness's CA; the paths are
// absolute so the file works from any directory.
func writeKubeconfig(path, server string, f credentialFiles) error {
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: harness
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: harness
  context:
    cluster: harness
    user: admin
    namespace: default
current-context: harness
`, server, f.caCert, f.adminToken)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}
