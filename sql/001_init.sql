-- Core schema: clients, tokens, imports, files, outcomes.
-- Applied once by scripts/migrate.sh, which records it in schema_versions.

CREATE TABLE clients (
    id                  text PRIMARY KEY,            -- our client_id for the provider (random)
    name                text NOT NULL,
    jwks                jsonb,                       -- stored public JWKS, or
    jwks_uri            text,                        -- fetched and cached
    jwks_cache          jsonb,
    jwks_fetched_at     timestamptz,
    fhir_base_url       text NOT NULL,               -- provider FHIR base; exportUrl must lie under it
    provider_client_id  text,                        -- the consumer's client_id at the provider
    provider_auth       text NOT NULL DEFAULT 'smart' CHECK (provider_auth IN ('smart', 'open')),
    provider_token_url  text,                        -- discovered token endpoint (cache)
    scope               text,                        -- NULL: config default_scope
    kickoff_method      text NOT NULL DEFAULT 'post' CHECK (kickoff_method IN ('post', 'get')),
    enabled             boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (jwks IS NOT NULL OR jwks_uri IS NOT NULL)
);

-- Client assertion ids seen, kept until the assertion expires (replay guard).
CREATE TABLE used_jtis (
    client_id   text NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    jti         text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);

-- Opaque bearer tokens issued by /auth/token; only the SHA-256 is kept.
CREATE TABLE access_tokens (
    token_sha256 text PRIMARY KEY,
    client_id    text NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope        text NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX access_tokens_expires ON access_tokens (expires_at);

CREATE TABLE imports (
    id                  text PRIMARY KEY,            -- >= 128 random bits, base64url
    client_id           text NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    export_url          text NOT NULL,
    export_type         text NOT NULL CHECK (export_type IN ('dynamic', 'static')),
    params              jsonb NOT NULL DEFAULT '{}', -- kick-off parameters passed through
    state               text NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued', 'kickoff', 'exporting', 'downloading',
                                         'complete', 'failed', 'cancelled')),
    cancel_requested    boolean NOT NULL DEFAULT false,
    cancel_done         boolean NOT NULL DEFAULT false, -- worker finished cancel clean-up
    progress            text,                        -- X-Progress for our pollers (< 100 chars)
    provider_status_url text,                        -- Content-Location from the provider
    provider_progress   text,                        -- provider's own X-Progress
    transaction_time    text,                        -- from the provider manifest
    manifest            jsonb,                       -- provider manifest (all pages merged)
    error_status        integer,                     -- HTTP status for a failed import
    error_code          text,                        -- OperationOutcome issue code
    error_message       text,
    worker_id           text,
    lease_until         timestamptz,
    attempts            integer NOT NULL DEFAULT 0,
    files_total         integer NOT NULL DEFAULT 0,
    files_done          integer NOT NULL DEFAULT 0,
    resources           bigint NOT NULL DEFAULT 0,
    bytes               bigint NOT NULL DEFAULT 0,
    last_poll_at        timestamptz,                 -- our pollers, for 429 on fast polling
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz
);
CREATE INDEX imports_runnable ON imports (created_at)
    WHERE state IN ('queued', 'kickoff', 'exporting', 'downloading');
CREATE INDEX imports_client ON imports (client_id, created_at);

CREATE TABLE import_files (
    id              bigserial PRIMARY KEY,
    import_id       text NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    seq             integer NOT NULL,                -- position in the manifest (1-based)
    kind            text NOT NULL CHECK (kind IN ('output', 'deleted', 'error')),
    type            text NOT NULL,                   -- resourceType from the manifest
    url             text NOT NULL,
    manifest_count  bigint,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'downloading', 'done', 'failed')),
    lines           bigint NOT NULL DEFAULT 0,
    bytes           bigint NOT NULL DEFAULT 0,
    dest_path       text,                            -- relative to storage_dir
    sha256          text,
    error           text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (import_id, seq)
);

-- Outcome entries, one OperationOutcome line each in the outcome NDJSON.
CREATE TABLE outcomes (
    id          bigserial PRIMARY KEY,
    import_id   text NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    severity    text NOT NULL CHECK (severity IN ('information', 'warning', 'error', 'fatal')),
    code        text NOT NULL,                       -- FHIR issue type code
    file_url    text,
    line        bigint,
    diagnostics text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outcomes_import ON outcomes (import_id, id);
