// URL building for the client: keys travel in the path after the route prefix (shared/API.md "Conventions"),
// each segment percent-encoded and the slashes kept, so `config/db/url` reads as /v1/kv/config/db/url in logs.

/** `route/<key>` with each key segment percent-encoded; `.` and `..` segments too, so no proxy folds them away. */
export function keyPath(route: string, key: string): string {
  if (key === '') return route;
  const segments = key.split('/').map((segment) => (segment === '.' || segment === '..' ? segment.replaceAll('.', '%2E') : encodeURIComponent(segment)));
  return `${route}/${segments.join('/')}`;
}

/** One path segment (a service, instance, lock or election name). */
export function segment(name: string): string {
  return encodeURIComponent(name);
}

/** `?a=1&b=true` from the defined entries, or '' when there are none. */
export function query(entries: Readonly<Record<string, string | number | boolean | undefined>>): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(entries)) if (value !== undefined) params.set(name, String(value));
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}
