// A PostgreSQL connection string (PG_CONN_STR, state.conn_str) as libpq's
// environment variables, so that psql connects with nothing on its command line:
// the arguments of every process are readable by every local user (/proc), and
// a connection string may hold a password.
const KEYWORDS: Record<string, string> = {
  host: "PGHOST",
  hostaddr: "PGHOSTADDR",
  port: "PGPORT",
  dbname: "PGDATABASE",
  user: "PGUSER",
  password: "PGPASSWORD",
  passfile: "PGPASSFILE",
  service: "PGSERVICE",
  options: "PGOPTIONS",
  application_name: "PGAPPNAME",
  connect_timeout: "PGCONNECT_TIMEOUT",
  sslmode: "PGSSLMODE",
  sslrootcert: "PGSSLROOTCERT",
  sslcert: "PGSSLCERT",
  sslkey: "PGSSLKEY",
  sslcrl: "PGSSLCRL",
  gssencmode: "PGGSSENCMODE",
  channel_binding: "PGCHANNELBINDING",
  target_session_attrs: "PGTARGETSESSIONATTRS",
};

export class ConnStrError extends Error {}

function variable(keyword: string): string {
  const name = KEYWORDS[keyword];
  if (!name) throw new ConnStrError(`the connection string's parameter '${keyword}' has no libpq environment variable; leave it out or use a service file (service=)`);
  return name;
}

/** The libpq environment of CONNSTR: a postgres:// URI, or keyword=value pairs. */
export function pgEnvironment(connStr: string): Record<string, string> {
  const env: Record<string, string> = {};
  if (/^postgres(ql)?:\/\//.test(connStr)) {
    let url: URL;
    try {
      url = new URL(connStr);
    } catch {
      throw new ConnStrError("the connection string is not a valid postgres:// URI");
    }
    if (url.hostname) env.PGHOST = decodeURIComponent(url.hostname.replace(/^\[(.*)\]$/, "$1"));
    if (url.port) env.PGPORT = url.port;
    if (url.username) env.PGUSER = decodeURIComponent(url.username);
    if (url.password) env.PGPASSWORD = decodeURIComponent(url.password);
    const dbname = decodeURIComponent(url.pathname.replace(/^\//, ""));
    if (dbname) env.PGDATABASE = dbname;
    for (const [keyword, value] of url.searchParams) env[variable(keyword)] = value;
    return env;
  }
  // keyword = value, values optionally in single quotes with \' and \\ escapes.
  const pair = /\s*([a-z_]+)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S*))/gy;
  let match: RegExpExecArray | null;
  let end = 0;
  while ((match = pair.exec(connStr)) !== null) {
    env[variable(match[1])] = match[2] !== undefined ? match[2].replace(/\\(.)/g, "$1") : match[3];
    end = pair.lastIndex;
  }
  if (connStr.slice(end).trim()) throw new ConnStrError("the connection string is neither a postgres:// URI nor keyword=value pairs");
  return env;
}
