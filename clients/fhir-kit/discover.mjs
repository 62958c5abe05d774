// fhir-kit-client against a live kap-outcomes: SMART discovery (the well-known document and
// the CapabilityStatement's oauth-uris, each on its own), then a search the token's scope
// allows and a read it does not. Prints one JSON object for tests/test_smart_http.py.
// Usage: node discover.mjs <fhir base> <access token> <patient id>
import { Client } from 'fhir-kit-client';

const [baseUrl, accessToken, patientId] = process.argv.slice(2);
const client = new Client({ baseUrl });
const found = await client.smartAuthMetadata();
const capability = await client.capabilityStatement();
const security = capability.rest[0].security;
const uris = security.extension.find(
  (e) => e.url === 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
);
client.bearerToken = accessToken;
const bundle = await client.search({ resourceType: 'Observation', searchParams: { patient: patientId } });
let readStatus = null;
let readIssue = null;
try {
  await client.read({ resourceType: 'Patient', id: patientId });
  readStatus = 200;
} catch (error) {
  readStatus = error.response?.status ?? null;
  readIssue = error.response?.data?.issue?.[0]?.code ?? null;
}
console.log(
  JSON.stringify({
    tokenUrl: found.tokenUrl?.toString() ?? null,
    capabilityUris: Object.fromEntries(uris.extension.map((e) => [e.url, e.valueUri])),
    services: security.service.flatMap((s) => s.coding.map((c) => c.code)),
    searchType: bundle.type,
    readStatus,
    readIssue,
  }),
);
