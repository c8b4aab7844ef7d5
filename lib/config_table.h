/* The one list of configuration keys: X(type, name, default, description).
 * Types: STR, INT, BOOL, ENUM (default "a|b|c": one of these, a by default).  `bulk-import-config --doc` turns this into the
 * README's configuration reference, so describe each key for a user. */
#define CONFIG_TABLE(X)                                                        \
X(STR,  base_url, "http://127.0.0.1:8080",                                     \
  "Public base URL of the consumer; status, outcome and token URLs are built from it and it is the `aud` required in client assertions.") \
X(STR,  db_conninfo, "dbname=bulk_import",                                     \
  "libpq connection string for PostgreSQL.")                                   \
X(ENUM, log_level, "info|debug|warn|error", "How much the programs log.")        \
X(STR,  consumer_jwks_file, "",                                                \
  "JWKS file with the consumer's public keys, served at /jwks for providers.") \
X(STR,  consumer_private_key_file, "",                                         \
  "Consumer private key (JWK, JWKS or PEM) used by the worker to sign SMART assertions to providers. Read by the worker only.") \
X(STR,  consumer_key_alg, "",                                                  \
  "Algorithm used with the consumer key (RS384, ES384, ...); empty means the key's own alg.") \
X(INT,  access_token_lifetime, "300", "Lifetime in seconds of access tokens issued by /auth/token.") \
X(INT,  max_running_imports, "3",                                              \
  "Imports one client may have running at once; more pings get 429.")          \
X(INT,  status_retry_after, "2",                                               \
  "Seconds advertised in Retry-After on status responses; faster polling gets 429.") \
X(BOOL, status_allow_tokenless, "false",                                       \
  "Allow status, cancel and outcome requests without a token (the status URL is unguessable).") \
X(INT,  jwks_cache_seconds, "300", "How long a client's fetched jwks_uri is cached.") \
X(STR,  storage_dir, "var/data",                                              \
  "Where imported files go, one sub-folder or key prefix per import: a folder, s3://bucket/prefix (see the s3_* keys and the AWS_* environment variables), http(s)://... (one PUT or POST per file) or none (validate and discard).") \
X(BOOL, cancel_delete_files, "true", "Remove stored files when an import is cancelled.") \
X(INT,  worker_threads, "2", "Imports one worker process runs at the same time.") \
X(INT,  worker_lease_seconds, "30",                                            \
  "Lease on a claimed import; a worker that stops renewing it loses the import to another worker.") \
X(INT,  download_parallelism, "4", "Parallel file downloads per import.")       \
X(INT,  max_line_bytes, "16777216", "Longest accepted NDJSON line in bytes.")   \
X(INT,  poll_max_wait, "60", "Upper bound in seconds for any single wait between status polls.") \
X(INT,  poll_default_wait, "2", "First wait when the provider sends no usable Retry-After (then exponential backoff with jitter).") \
X(INT,  export_deadline, "86400", "Overall limit in seconds for one import.")   \
X(INT,  http_connect_timeout, "10", "Seconds to establish a connection to a provider.") \
X(INT,  http_idle_timeout, "60", "Abort a transfer that moves no data for this many seconds.") \
X(INT,  http_retries, "3", "Retries of a failed request (connection errors, 429, 5xx) before giving up.") \
X(STR,  default_scope, "system/*.read", "Scope requested from providers unless the client sets its own.") \
X(STR,  user_agent, "bulk-import/0.1", "User-Agent sent to providers.") \
X(INT,  worker_drain_seconds, "30",                                            \
  "On SIGTERM the worker stops claiming and lets running imports finish for this many seconds; then it gives them back to the queue (no DELETE at the provider) for another worker to continue.") \
X(INT,  worker_max_attempts, "5",                                              \
  "An import whose worker died or lost its lease this many times is failed instead of being claimed again (0: no limit). Imports given back on shutdown do not count.") \
X(INT,  worker_max_issues_per_file, "1000",                                    \
  "Outcome entries recorded per downloaded file; further validation issues of that file are counted but not stored (0: no limit).") \
X(INT,  max_request_body, "1048576",                                          \
  "Largest request body the FastCGI front end accepts, in bytes; larger bodies get 413.") \
X(STR,  token_default_scope, "system/*.write",                                 \
  "Scope granted by /auth/token when a client's token request names none.") \
X(STR,  s3_region, "", "S3 region for an s3:// storage_dir (empty: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1).") \
X(STR,  s3_endpoint, "", "S3 endpoint URL for S3-compatible stores (path-style requests); empty: AWS.") \
X(ENUM, http_destination_method, "PUT|POST", "Request method for an http(s):// storage_dir.") \
X(STR,  name_template, "{n}.{type}.ndjson",                                   \
  "Stored file names; {n} sequence, {type}, {page} manifest page, {basename} of the file URL, {exportId}. Nothing from the provider can leave the import folder.") \
X(ENUM, invalid_policy, "drop-file|skip|fail",                                \
  "A file with invalid lines: drop-file (not stored, errors in the outcome, other files go on), skip (store it without the invalid lines, each one in the outcome) or fail (fail the import).") \
X(BOOL, save_manifest, "true",                                                 \
  "When every file of an import is stored, write manifest.json last with each file's destination, size, SHA-256 and line count.") \
X(BOOL, resume_downloads, "true",                                              \
  "A worker taking over an import continues partly downloaded files with HTTP Range where the provider supports it (folder storage only).") \
X(STR,  inline_attachment_types, "",                                           \
  "Comma-separated MIME types of DocumentReference/DiagnosticReport attachments to fetch and put inline (empty: attachments left as they are).") \
X(INT,  inline_attachment_max, "1048576", "Largest attachment put inline, in bytes; larger ones are saved under attachments/.") \
X(BOOL, pdf_to_text, "false", "Convert inline PDF attachments to text/plain with pdftotext (sandboxed child process).") \
X(STR,  token_origins, "",                                                     \
  "Comma-separated extra origins (scheme://host:port) allowed to receive the provider's bearer token, e.g. a file server of the provider.") \
X(STR,  provider_headers, "",                                                  \
  "Extra request headers for providers, separated by '|' (e.g. `X-Tenant: a|X-Trace: on`); sent on kick-off, status, downloads and attachments, only to the provider's FHIR origin.") \
X(STR,  ca_file, "", "CA bundle used to verify providers' TLS certificates (empty: the system's).") \
X(BOOL, tls_insecure, "false", "Do not verify providers' TLS certificates (testing only).") \
X(STR,  http_proxy, "", "Proxy for requests to providers (libcurl syntax, e.g. http://proxy:3128).") \
X(BOOL, kickoff_lenient, "false", "Send Prefer: handling=lenient with kick-off requests.")
