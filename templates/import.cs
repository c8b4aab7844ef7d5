<?cs def:content() ?>
<div id="import" data-running="<?cs if:Import.running ?>1<?cs else ?>0<?cs /if ?>">
<h2 class="subtitle"><code><?cs var:Import.id ?></code> <?cs call:state(Import.state) ?></h2>
<p class="bar"><?cs call:progress(Import.pct, "Progress") ?><?cs if:Raw.progress ?> <span class="progress-text"><?cs var:Raw.progress ?></span><?cs /if ?></p>
<?cs if:Import.running ?>
<form method="post" action="<?cs var:Root ?>/admin/imports/<?cs var:Import.id ?>/cancel" class="inline">
<?cs call:csrf() ?>
<button type="submit" class="danger">Cancel import</button> <span class="hint">Stops the export at the provider<?cs if:Raw.cancel_requested != "t" ?>, like DELETE on the status URL<?cs /if ?>.</span>
</form>
<?cs /if ?>
<?cs if:Import.error ?>
<p class="error" id="import-error">Failed<?cs if:Raw.error_status ?> (HTTP <?cs var:Raw.error_status ?><?cs if:Raw.error_code ?>, <?cs var:Raw.error_code ?><?cs /if ?>)<?cs /if ?>: <?cs var:Import.error ?></p>
<?cs /if ?>
<dl class="facts">
<dt>Client</dt><dd><a href="<?cs var:Root ?>/admin/clients/<?cs var:Import.client_id ?>"><?cs var:Import.client ?></a></dd>
<dt>Type</dt><dd><?cs var:Import.type ?></dd>
<dt>Export URL</dt><dd><code><?cs var:Raw.export_url ?></code></dd>
<dt>Provider export status URL</dt><dd><?cs if:Raw.provider_status_url ?><code id="provider-status-url"><?cs var:Raw.provider_status_url ?></code><?cs else ?>not yet known<?cs /if ?><?cs if:Raw.provider_progress ?> (provider says: <?cs var:Raw.provider_progress ?>)<?cs /if ?></dd>
<dt>Status URL for the provider</dt><dd><code><?cs var:Import.StatusUrl ?></code></dd>
<dt>Outcome NDJSON</dt><dd><code><?cs var:Import.OutcomeUrl ?></code></dd>
<dt>Files</dt><dd><?cs var:Import.files ?></dd>
<dt>Resources</dt><dd><?cs var:Import.resources ?></dd>
<dt>Bytes</dt><dd><?cs var:Import.bytes ?></dd>
<dt>Throughput</dt><dd><?cs var:Import.throughput ?></dd>
<dt>Created</dt><dd><?cs var:Import.created ?></dd>
<dt>Started</dt><dd><?cs var:Import.started ?></dd>
<dt>Finished</dt><dd><?cs if:Raw.finished ?><?cs var:Raw.finished ?><?cs else ?>–<?cs /if ?></dd>
<dt>Duration</dt><dd><?cs var:Import.duration ?></dd>
<?cs if:Raw.transaction_time ?><dt>Transaction time</dt><dd><?cs var:Raw.transaction_time ?></dd><?cs /if ?>
<dt>Worker</dt><dd><?cs if:Raw.worker_id ?><?cs var:Raw.worker_id ?><?cs else ?>none<?cs /if ?><?cs if:Raw.lease_until ?> (lease until <?cs var:Raw.lease_until ?>)<?cs /if ?>, <?cs var:Raw.attempts ?> attempt<?cs if:Raw.attempts != 1 ?>s<?cs /if ?></dd>
</dl>
<?cs if:Raw.params ?><details><summary>Kick-off parameters</summary><pre><?cs var:Raw.params ?></pre></details><?cs /if ?>

<section aria-labelledby="h-files">
<h2 id="h-files">Files</h2>
<?cs if:!Files.0.seq ?>
<p class="empty">No files yet<?cs if:Import.running ?>: the manifest is not ready<?cs /if ?>.</p>
<?cs else ?>
<?cs if:FilesCut ?><p class="count">Only the first <?cs var:FilesCut ?> files are listed.</p><?cs /if ?>
<div class="scroll">
<table id="files">
<thead><tr><th scope="col">#</th><th scope="col">URL</th><th scope="col">Type</th><th scope="col">Kind</th><th scope="col">State</th><th scope="col">Lines</th><th scope="col">Bytes</th><th scope="col">Errors</th></tr></thead>
<tbody>
<?cs each:f = Files ?>
<tr>
<td class="num"><?cs var:f.seq ?></td>
<td class="url"><code><?cs var:f.url ?></code></td>
<td><?cs var:f.type ?></td>
<td><?cs var:f.kind ?></td>
<td><?cs call:state(f.state) ?></td>
<td class="num"><?cs var:f.lines ?><?cs if:f.manifest_count ?> of <?cs var:f.manifest_count ?><?cs /if ?></td>
<td class="num"><?cs var:f.bytes_h ?></td>
<td><?cs if:f.errors > 0 ?><?cs var:f.errors ?> error<?cs if:f.errors != 1 ?>s<?cs /if ?><?cs /if ?><?cs if:f.warnings > 0 ?><?cs if:f.errors > 0 ?>, <?cs /if ?><?cs var:f.warnings ?> warning<?cs if:f.warnings != 1 ?>s<?cs /if ?><?cs /if ?><?cs if:f.error ?> <?cs var:f.error ?><?cs /if ?></td>
</tr>
<?cs /each ?>
</tbody>
</table>
</div>
<?cs /if ?>
</section>

<section aria-labelledby="h-outcomes">
<h2 id="h-outcomes">Outcome entries</h2>
<?cs if:Raw.n_outcomes == 0 ?>
<p class="empty">None yet.</p>
<?cs else ?>
<p class="count"><?cs var:Raw.n_outcomes ?> entr<?cs if:Raw.n_outcomes == 1 ?>y<?cs else ?>ies<?cs /if ?><?cs if:Raw.n_outcomes > OutcomesShown ?>, the first <?cs var:OutcomesShown ?> shown<?cs /if ?>.</p>
<div class="scroll">
<table id="outcomes">
<thead><tr><th scope="col">Severity</th><th scope="col">Code</th><th scope="col">File</th><th scope="col">Line</th><th scope="col">Diagnostics</th></tr></thead>
<tbody>
<?cs each:o = Outcomes ?>
<tr class="sev-<?cs var:o.severity ?>"><td><?cs var:o.severity ?></td><td><?cs var:o.code ?></td><td class="url"><?cs if:o.file_url ?><code><?cs var:o.file_url ?></code><?cs /if ?></td><td class="num"><?cs var:o.line ?></td><td><?cs var:o.diagnostics ?></td></tr>
<?cs /each ?>
</tbody>
</table>
</div>
<?cs /if ?>
</section>
</div>
<?cs /def ?>
