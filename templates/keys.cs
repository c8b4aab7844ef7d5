<?cs def:content() ?>
<p>Make a key pair for a Data Provider: it keeps the private key and signs its token requests with it; this server gets the public key. The key pair is made on the server for this page only. It is not stored and not logged.</p>
<form method="post" action="<?cs var:Root ?>/admin/keys" class="keygen">
<?cs call:csrf() ?>
<div class="field">
<label for="kg-alg">Algorithm</label>
<select id="kg-alg" name="alg">
<?cs each:a = Algs ?><option value="<?cs var:a.Name ?>"<?cs if:a.Selected ?> selected<?cs /if ?>><?cs var:a.Name ?></option><?cs /each ?>
</select>
</div>
<div class="field">
<label for="kg-bits">RSA key size (bits)</label>
<p class="hint" id="kg-bits-hint">Only for RS256, RS384 and RS512; EC keys use the curve of their algorithm (P-256, P-384, P-521).</p>
<select id="kg-bits" name="bits" aria-describedby="kg-bits-hint">
<?cs each:b = Bits ?><option value="<?cs var:b.Name ?>"<?cs if:b.Selected ?> selected<?cs /if ?>><?cs var:b.Name ?></option><?cs /each ?>
</select>
</div>
<p><button type="submit">Generate key pair</button></p>
</form>

<?cs if:Key.Kid ?>
<section aria-labelledby="h-generated" id="generated">
<h2 id="h-generated">New <?cs var:Key.Alg ?> key<?cs if:Key.Bits ?> (<?cs var:Key.Bits ?> bits)<?cs /if ?>, kid <code><?cs var:Key.Kid ?></code></h2>
<p class="warning" role="note">Copy or download the private key now: it is shown only on this page and kept nowhere. Give it to the provider over a safe channel.</p>

<form method="get" action="<?cs var:Root ?>/admin/clients/new" class="inline">
<input type="hidden" name="jwks" value="<?cs var:Key.PublicJwks ?>">
<button type="submit" id="use-key">Use this public key to register a client</button>
</form>

<div class="keypair">
<div>
<h3>Public key</h3>
<label for="pub-jwk">Public JWK</label>
<textarea id="pub-jwk" class="json" rows="10" readonly spellcheck="false"><?cs var:Key.PublicJwk ?></textarea>
<?cs call:copy("pub-jwk", "public JWK") ?> <?cs call:download("pub-jwk", "public JWK", "public.jwk.json") ?>
<label for="pub-jwks">Public JWKS (for the registration form)</label>
<textarea id="pub-jwks" rows="4" readonly spellcheck="false"><?cs var:Key.PublicJwks ?></textarea>
<?cs call:copy("pub-jwks", "public JWKS") ?> <?cs call:download("pub-jwks", "public JWKS", "public.jwks.json") ?>
<label for="pub-pem">Public PEM</label>
<textarea id="pub-pem" rows="8" readonly spellcheck="false"><?cs var:Key.PublicPem ?></textarea>
<?cs call:copy("pub-pem", "public PEM") ?> <?cs call:download("pub-pem", "public PEM", "public.pem") ?>
</div>
<div>
<h3>Private key</h3>
<label for="priv-jwk">Private JWK</label>
<textarea id="priv-jwk" class="json" rows="10" readonly spellcheck="false"><?cs var:Key.PrivateJwk ?></textarea>
<?cs call:copy("priv-jwk", "private JWK") ?> <?cs call:download("priv-jwk", "private JWK", "private.jwk.json") ?>
<label for="priv-pem">Private PEM (PKCS#8)</label>
<textarea id="priv-pem" rows="8" readonly spellcheck="false"><?cs var:Key.PrivatePem ?></textarea>
<?cs call:copy("priv-pem", "private PEM") ?> <?cs call:download("priv-pem", "private PEM", "private.pem") ?>
</div>
</div>
</section>
<?cs /if ?>
<?cs /def ?>
