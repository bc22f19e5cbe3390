// A connection string as libpq's environment (lib/cli/pg-env.ts): what psql then
// connects with, nothing of it on a command line.
import { ConnStrError, pgEnvironment } from "../../lib/cli/pg-env";

describe("pgEnvironment", () => {
  test("a postgres:// URI: host, port, user, password and database, percent-decoded, and its parameters", () => {
    expect(pgEnvironment("postgres://btw:s%40cret@db.example.org:5433/btw_state?sslmode=verify-full&connect_timeout=5")).toEqual({
      PGHOST: "db.example.org",
      PGPORT: "5433",
      PGUSER: "btw",
      PGPASSWORD: "s@cret",
      PGDATABASE: "btw_state",
      PGSSLMODE: "verify-full",
      PGCONNECT_TIMEOUT: "5",
    });
    expect(pgEnvironment("postgresql://[::1]/btw")).toEqual({ PGHOST: "::1", PGDATABASE: "btw" });
    expect(pgEnvironment("postgres:///btw?host=/var/run/postgresql")).toEqual({ PGDATABASE: "btw", PGHOST: "/var/run/postgresql" });
  });

  test("keyword=value pairs, quoted values included", () => {
    expect(pgEnvironment("host=127.0.0.1 port=5432 dbname=btw user=btw password='it''s' sslmode=disable".replace("''", "\\'"))).toEqual({
      PGHOST: "127.0.0.1",
      PGPORT: "5432",
      PGDATABASE: "btw",
      PGUSER: "btw",
      PGPASSWORD: "it's",
      PGSSLMODE: "disable",
    });
  });

  test("a parameter libpq has no variable for, and a string that is neither form, are refused by name", () => {
    expect(() => pgEnvironment("postgres://h/db?keepalives=1")).toThrow(
      new ConnStrError("the connection string's parameter 'keepalives' has no libpq environment variable; leave it out or use a service file (service=)"),
    );
    expect(() => pgEnvironment("host=h what")).toThrow(ConnStrError);
  });
});
