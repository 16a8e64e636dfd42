// rules.http as Cilium writes it, checked so that Envoy (RE2) will accept
// every regex sluice hands it and match it as Cilium would: whole-value.
import { PolicyProblem, isObject, listAt, type HttpRule } from './rules.js';

/** Why RE2 would refuse a regex that JavaScript accepts, or undefined. */
function re2Gap(re: string): string | undefined {
  let inClass = false;
  for (let i = 0; i < re.length; i++) {
    const c = re[i];
    if (c === '\\') {
      const n = re[i + 1];
      if (!inClass && n !== undefined && /[1-9]/.test(n)) return 'backreferences are not supported by RE2';
      if (n === 'k' && re[i + 2] === '<') return 'named backreferences are not supported by RE2';
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === '(' && re[i + 1] === '?') {
      const rest = re.slice(i + 2, i + 4);
      if (rest.startsWith('=') || rest.startsWith('!')) return 'lookahead is not supported by RE2';
      if (rest === '<=' || rest === '<!') return 'lookbehind is not supported by RE2';
    }
  }
  return undefined;
}

function regexAt(v: unknown, field: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new PolicyProblem(field, 'want a regular expression string');
  try {
    new RegExp(v);
  } catch (e) {
    throw new PolicyProblem(field, `invalid regular expression: ${(e as Error).message}`);
  }
  const gap = re2Gap(v);
  if (gap) throw new PolicyProblem(field, `invalid regular expression ${JSON.stringify(v)}: ${gap}`);
  return v;
}

const HTTP_FIELDS = new Set(['method', 'path', 'host', 'headers', 'headerMatches']);
const MISMATCH = new Set(['LOG', 'ADD', 'DELETE', 'REPLACE']);

export function parseHttpRules(v: unknown, field: string): HttpRule[] {
  return listAt(v, field).map((r, i) => {
    const f = `${field}[${i}]`;
    if (!isObject(r)) throw new PolicyProblem(f, 'want an object');
    for (const k of Object.keys(r)) if (!HTTP_FIELDS.has(k)) throw new PolicyProblem(`${f}.${k}`, `unknown field "${k}"`);
    const headers = listAt(r.headers, `${f}.headers`).map((h, j) => {
      if (typeof h !== 'string' || !h.trim()) throw new PolicyProblem(`${f}.headers[${j}]`, 'want "Name" or "Name: value"');
      // Cilium splits at the first space or colon: "X-Token: abc" and "X-Token abc" both name a value.
      const m = /^([^\s:]+)[\s:]*(.*)$/.exec(h.trim())!;
      return m[2] ? { name: m[1], value: m[2] } : { name: m[1] };
    });
    const headerMatches = listAt(r.headerMatches, `${f}.headerMatches`).map((h, j) => {
      const hf = `${f}.headerMatches[${j}]`;
      if (!isObject(h) || typeof h.name !== 'string' || !h.name) throw new PolicyProblem(`${hf}.name`, 'want a header name');
      if (h.secret !== undefined) throw new PolicyProblem(`${hf}.secret`, 'header values from Secrets are not supported by sluice');
      if (h.value !== undefined && typeof h.value !== 'string') throw new PolicyProblem(`${hf}.value`, 'want a string');
      if (h.mismatch !== undefined && !MISMATCH.has(h.mismatch)) throw new PolicyProblem(`${hf}.mismatch`, `unknown action ${JSON.stringify(h.mismatch)}; want LOG, ADD, DELETE or REPLACE`);
      return { name: h.name, ...(h.value !== undefined ? { value: h.value } : {}), ...(h.mismatch ? { mismatch: h.mismatch } : {}) };
    });
    const out: HttpRule = { field: f, headers, headerMatches };
    for (const k of ['method', 'path', 'host'] as const) {
      const re = regexAt(r[k], `${f}.${k}`);
      if (re !== undefined) out[k] = re;
    }
    return out;
  });
}

/** Whether a request matches one rule, with Cilium's whole-value regexes (for trace). */
export function httpRuleMatches(r: HttpRule, req: { method?: string; path?: string; host?: string; headers?: Record<string, string> }): boolean {
  const full = (re: string | undefined, v: string | undefined) => re === undefined || (v !== undefined && new RegExp(`^(?:${re})$`).test(v));
  if (!full(r.method, req.method) || !full(r.path, req.path) || !full(r.host, req.host)) return false;
  const hdr = (name: string) => Object.entries(req.headers ?? {}).find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
  if (!r.headers.every((h) => hdr(h.name) !== undefined && (h.value === undefined || hdr(h.name) === h.value))) return false;
  // A mismatch with an action set is not a denial: the proxy logs or rewrites and lets it pass.
  return r.headerMatches.every((h) => h.mismatch !== undefined || (hdr(h.name) !== undefined && (h.value === undefined || hdr(h.name) === h.value)));
}
