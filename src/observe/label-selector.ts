// Hubble's label filters: a Kubernetes label selector ("app=web,tier in
// (a,b),!canary") over Cilium labels, where a key may name its source
// ("k8s:app") and a key without one matches that key from any source.

interface Requirement {
  source: string;
  key: string;
  op: 'exists' | '!exists' | '=' | '!=' | 'in' | 'notin';
  values: string[];
}

export type LabelMatcher = (labels: readonly string[]) => boolean;

/** "k8s:app=web" into its parts; a label without a source is "unspec", as Cilium reads it. */
function parseLabel(text: string): { source: string; key: string; value: string } {
  const eq = text.indexOf('=');
  const kv = eq < 0 ? [text, ''] : [text.slice(0, eq), text.slice(eq + 1)];
  const colon = kv[0].indexOf(':');
  return colon < 0 ? { source: 'unspec', key: kv[0], value: kv[1] } : { source: kv[0].slice(0, colon), key: kv[0].slice(colon + 1), value: kv[1] };
}

function splitTop(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(selector.slice(start));
  return parts.map((p) => p.trim());
}

function splitKey(raw: string): { source: string; key: string } {
  const colon = raw.indexOf(':');
  return colon < 0 ? { source: 'any', key: raw } : { source: raw.slice(0, colon), key: raw.slice(colon + 1) };
}

function parseRequirement(text: string, selector: string): Requirement {
  const bad = () => new Error(`invalid label selector ${JSON.stringify(selector)}: cannot parse ${JSON.stringify(text)}`);
  let m = /^!\s*([^\s=!(),]+)$/.exec(text);
  if (m) return { ...splitKey(m[1]), op: '!exists', values: [] };
  m = /^([^\s=!(),]+)$/.exec(text);
  if (m) return { ...splitKey(m[1]), op: 'exists', values: [] };
  m = /^([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)$/.exec(text);
  if (m) return { ...splitKey(m[1]), op: m[2] === '!=' ? '!=' : '=', values: [m[3]] };
  m = /^([^\s=!(),]+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(text);
  if (m) return { ...splitKey(m[1]), op: m[2] as 'in' | 'notin', values: m[3].split(',').map((v) => v.trim()) };
  throw bad();
}

export function compileLabelSelector(selector: string): LabelMatcher {
  const reqs = splitTop(selector)
    .filter((p) => p !== '')
    .map((p) => parseRequirement(p, selector));
  return (labels) => {
    const parsed = labels.map(parseLabel);
    return reqs.every((r) => {
      const found = parsed.find((l) => l.key === r.key && (r.source === 'any' || l.source === r.source));
      switch (r.op) {
        case 'exists':
          return !!found;
        case '!exists':
          return !found;
        case '=':
        case 'in':
          return !!found && r.values.includes(found.value);
        case '!=':
        case 'notin':
          return !found || !r.values.includes(found.value);
      }
    });
  };
}
