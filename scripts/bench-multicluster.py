#!/usr/bin/env python3
"""Issue 20's performance check: the same 10,000 workloads as one cluster
(`one/`) and as 4 clusters of 2,500 linked both ways (`multi/`, each cluster
with a Link to each other one, one Service in ten exported through the
gateway). Writes both under the current directory; time them with
`meshc check one` and `meshc check multi` (docs/benchmarks/multicluster.md).
Deterministic; no dependencies."""
import os, sys, shutil
C, N, NS = 4, 2500, 25
def workload(c, i):
    ns = f"ns{i % NS}"; name = f"c{c}-w{i}"
    exp = '\n  labels:\n    mirror.linkerd.io/exported: "true"' if i % 10 == 0 else ''
    return f"""apiVersion: v1
kind: ServiceAccount
metadata: {{name: {name}, namespace: {ns}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}, tier: t{i % 5}}}}}
    spec:
      serviceAccountName: {name}
      containers:
        - name: app
          image: app
          ports: [{{name: http, containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {ns}{exp}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
"""
def namespace_policy(ns):
    return f"""apiVersion: v1
kind: Namespace
metadata: {{name: {ns}, annotations: {{linkerd.io/inject: enabled}}}}
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: http, namespace: {ns}}}
spec:
  podSelector: {{matchLabels: {{tier: t1}}}}
  port: http
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{name: ns-clients, namespace: {ns}}}
spec:
  identities: ["*.{ns}.serviceaccount.identity.linkerd.cluster.local"]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: http, namespace: {ns}}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: http}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: ns-clients}}]
---
"""
def link(t):
    return f"""apiVersion: multicluster.linkerd.io/v1alpha3
kind: Link
metadata: {{name: c{t}, namespace: linkerd-multicluster}}
spec:
  targetClusterName: c{t}
  gatewayAddress: 203.0.113.{t+1}
  gatewayPort: "4143"
  gatewayIdentity: linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local
  selector: {{matchLabels: {{mirror.linkerd.io/exported: "true"}}}}
---
"""
for d in ["one", "multi"]:
    shutil.rmtree(d, ignore_errors=True)
os.makedirs("one"); os.makedirs("multi")
with open("one/namespaces.yaml", "w") as f:
    for n in range(NS): f.write(namespace_policy(f"ns{n}"))
with open("multi/meshc.yaml", "w") as f:
    f.write("clusters:\n" + "".join(f"  - {{name: c{c}, directory: c{c}}}\n" for c in range(C)))
for c in range(C):
    os.makedirs(f"multi/c{c}")
    with open(f"multi/c{c}/namespaces.yaml", "w") as f:
        for n in range(NS): f.write(namespace_policy(f"ns{n}"))
    with open(f"multi/c{c}/links.yaml", "w") as f:
        for t in range(C):
            if t != c: f.write(link(t))
    for part in range(10):
        text = "".join(workload(c, i) for i in range(part * N // 10, (part + 1) * N // 10))
        open(f"multi/c{c}/w{part}.yaml", "w").write(text)
        open(f"one/c{c}-w{part}.yaml", "w").write(text)
