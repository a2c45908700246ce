// Validates every object `helm template` rendered (multi-document YAML, a file or
// stdin) against the Kubernetes API schemas of a current release (the npm package
// kubernetes-models, generated from Kubernetes' OpenAPI) and, for ServiceMonitor and
// PrometheusRule, the prometheus-operator CRDs (@kubernetes-models/prometheus-operator).
// Prints `ok KIND NAME` per object; exits 1 naming each invalid object with the
// path and rule that failed, or an object whose kind no schema here knows.
// Usage: node validate_manifests.mjs [FILE]
import fs from 'node:fs';
import { parseAllDocuments } from 'yaml';

const text = fs.readFileSync(process.argv[2] ?? 0, 'utf8');

// apiVersion -> the module holding its kinds (kubernetes-models/v1 for the core group, GROUP/VERSION otherwise).
function moduleOf(apiVersion) {
  if (apiVersion === 'monitoring.coreos.com/v1') return '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
  return `kubernetes-models/${apiVersion}`;
}

let failed = 0;
for (const doc of parseAllDocuments(text)) {
  if (doc.errors.length) {
    console.log(`invalid YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
    failed++;
    continue;
  }
  const obj = doc.toJS();
  if (obj === null || obj === undefined) continue;  // an empty document
  const where = `${obj.kind ?? '?'} ${obj.metadata?.name ?? '?'}`;
  if (typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') {
    console.log(`invalid ${where}: no apiVersion or kind`);
    failed++;
    continue;
  }
  let Kind;
  try {
    Kind = (await import(moduleOf(obj.apiVersion)))[obj.kind];
  } catch {
    Kind = undefined;
  }
  if (!Kind) {
    console.log(`invalid ${where}: no schema for ${obj.apiVersion} ${obj.kind}`);
    failed++;
    continue;
  }
  try {
    new Kind(obj).validate();
    console.log(`ok ${where}`);
  } catch (e) {
    const details = (e.errors ?? []).map((x) => `${x.instancePath || '/'} ${x.message ?? x.keyword}`).join('; ');
    console.log(`invalid ${where}: ${details || e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
