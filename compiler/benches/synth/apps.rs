//! The app manifests: ServiceAccount, Deployment or StatefulSet, Service.

use super::{App, AppKind, Lcg, Out, doc};
use std::fmt::Write as _;
use std::io;

pub(super) fn write_app(out: &mut Out, ns: &str, app: &App, rng: &mut Lcg) -> io::Result<()> {
    let a = &app.name;
    let v = &app.version;
    let mut buf = String::new();
    let stats = &mut out.stats;
    doc(
        &mut buf,
        stats,
        "ServiceAccount",
        &format!(
            "# {a}: {what}\n{}",
            super::labelled("v1", "ServiceAccount", a, ns, a),
            what = match app.kind {
                AppKind::HttpRoutes => "a JSON API with route-level policy",
                AppKind::HttpPlain => "an HTTP service with a Server-level policy",
                AppKind::Grpc => "a gRPC service",
                AppKind::Db => "a database (opaque TCP)",
            }
        ),
    );
    let is_db = app.kind == AppKind::Db;
    let kind = if is_db { "StatefulSet" } else { "Deployment" };
    let mut w = format!(
        "{}    app.kubernetes.io/version: \"{v}\"
spec:
  replicas: {r}
",
        super::labelled("apps/v1", kind, a, ns, a),
        r = app.replicas
    );
    if is_db {
        writeln!(w, "  serviceName: {a}").unwrap();
    }
    write!(
        w,
        "  selector:
    matchLabels:
      app.kubernetes.io/name: {a}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {a}
        app.kubernetes.io/part-of: {ns}
        app.kubernetes.io/version: \"{v}\"
"
    )
    .unwrap();
    if app.metrics {
        w.push_str(
            "      annotations:
        prometheus.io/scrape: \"true\"
        prometheus.io/port: \"9102\"
",
        );
    }
    write!(
        w,
        "    spec:
      serviceAccountName: {a}
      containers:
        - name: {a}
          image: registry.example.com/{ns}/{a}:{v}
          env:
            - name: LOG_LEVEL
              value: info
            - name: OTEL_SERVICE_NAME
              value: {a}
          ports:
"
    )
    .unwrap();
    let probe_port = if app.probe_port_named { "http" } else { "8080" };
    match app.kind {
        AppKind::Db => w.push_str(
            "            - name: postgres
              containerPort: 5432
              protocol: TCP
          readinessProbe:
            tcpSocket:
              port: postgres
            periodSeconds: 10
          livenessProbe:
            tcpSocket:
              port: postgres
            initialDelaySeconds: 30
            periodSeconds: 20
",
        ),
        _ => {
            if app.kind == AppKind::Grpc {
                w.push_str(
                    "            - name: grpc
              containerPort: 9090
              protocol: TCP
",
                );
            }
            w.push_str(
                "            - name: http
              containerPort: 8080
              protocol: TCP
",
            );
            if app.metrics {
                w.push_str(
                    "            - name: metrics
              containerPort: 9102
              protocol: TCP
",
                );
            }
            let (ready, live) = app.probes;
            write!(
                w,
                "          readinessProbe:
            httpGet:
              path: {ready}
              port: {probe_port}
            periodSeconds: {p}
            failureThreshold: 3
          livenessProbe:
            httpGet:
              path: {live}
              port: {probe_port}
            initialDelaySeconds: 10
            periodSeconds: 10
",
                p = 5 + rng.below(3) * 5
            )
            .unwrap();
            if app.kind == AppKind::Grpc {
                w.push_str(
                    "          startupProbe:
            grpc:
              port: 9090
            failureThreshold: 30
            periodSeconds: 2
",
                );
            }
        }
    }
    write!(
        w,
        "          resources:
            requests:
              cpu: {cpu}m
              memory: {mem}Mi
            limits:
              memory: {lim}Mi
          securityContext:
            runAsNonRoot: true
            runAsUser: 10001
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
",
        cpu = 10 * (1 + rng.below(20)),
        mem = 32 * (1 + rng.below(8)),
        lim = 64 * (1 + rng.below(8)),
    )
    .unwrap();
    if is_db {
        w.push_str(
            "          volumeMounts:
            - name: data
              mountPath: /var/lib/postgresql/data
  volumeClaimTemplates:
    - metadata:
        name: data
      spec:
        accessModes: [ReadWriteOnce]
        resources:
          requests:
            storage: 10Gi
",
        );
    }
    doc(&mut buf, stats, kind, &w);
    let ports = match app.kind {
        AppKind::Db => "    - name: postgres\n      port: 5432\n      targetPort: postgres\n",
        // Clients call gRPC apps on grpc only; their http port carries the
        // kubelet's probes, which do not go through the Service.
        AppKind::Grpc => "    - name: grpc\n      port: 9090\n      targetPort: grpc\n",
        _ => "    - name: http\n      port: 80\n      targetPort: http\n",
    };
    doc(
        &mut buf,
        stats,
        "Service",
        &format!(
            "{}spec:
{headless}  selector:
    app.kubernetes.io/name: {a}
  ports:
{ports}",
            super::labelled("v1", "Service", a, ns, a)
                + if app.service_timeout { "  annotations:\n    timeout.linkerd.io/request: 10s\n" } else { "" },
            headless = if is_db { "  clusterIP: None\n" } else { "" }
        ),
    );
    out.write(&format!("{ns}/apps/{a}.yaml"), &buf)
}
