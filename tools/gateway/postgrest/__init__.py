"""`/rest/v1` as PostgREST serves it: table reads (`tables`), function calls (`rpc`), the read
syntax (`query`), what every handler shares (`http`), and the mount (`routes`)."""
