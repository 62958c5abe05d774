// The flow a dashboard or app runs, against the generated types (openapi-typescript) with
// openapi-fetch: create a patient, submit a PHQ-9, read the signals, read a problem's detail.
// tests/test_generated_clients.py type-checks it with `tsc --strict` and runs it against a
// live server on 127.0.0.1.
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema.js";

declare const process: { argv: string[]; exit(code: number): never };

type Signals = components["schemas"]["SignalsPublic"];
type BoosterStatus = Signals["booster"]["status"];

export async function flow(baseUrl: string, token: string): Promise<string[]> {
  const client = createClient<paths>({
    baseUrl,
    headers: { Authorization: `Bearer ${token}` },
  });
  const said: string[] = [];

  const created = await client.POST("/v1/patients", {
    body: { external_id: `ts-${Date.now()}` },
    params: { header: { "Idempotency-Key": crypto.randomUUID() } },
  });
  if (created.error) {
    throw new Error(`createPatient: ${created.error.detail}`);
  }
  const patientId: string = created.data.id;
  said.push(`patient ${patientId}`);

  const submitted = await client.POST("/v1/patients/{patient_id}/assessments", {
    params: { path: { patient_id: patientId } },
    body: {
      instrument: "phq9",
      items: [1, 2, 1, 0, 1, 2, 1, 0, 0],
      administered_at: new Date().toISOString(),
      source: "clinician",
    },
  });
  if (submitted.error) {
    throw new Error(`submitAssessment: ${submitted.error.detail}`);
  }
  const total: number | null | undefined = submitted.data.total;
  said.push(`phq9 total ${total} severity ${submitted.data.severity}`);

  const signals = await client.GET("/v1/patients/{patient_id}/signals", {
    params: { path: { patient_id: patientId } },
  });
  if (signals.error) {
    throw new Error(`getSignals: ${signals.error.detail}`);
  }
  const status: BoosterStatus = signals.data.booster.status;
  said.push(`booster ${status} safety ${signals.data.safety.level}`);

  const missing = await client.GET("/v1/patients/{patient_id}", {
    params: { path: { patient_id: "no-such-patient" } },
  });
  if (missing.error) {
    // a Problem (application/problem+json): typed, no cast needed
    const detail: string = missing.error.detail;
    const statusCode: number = missing.error.status;
    said.push(`problem ${statusCode} ${detail}`);
  }
  return said;
}

const [baseUrl, token] = process.argv.slice(2);
if (baseUrl && token) {
  flow(baseUrl, token).then(
    (said) => console.log(JSON.stringify(said)),
    (error: unknown) => {
      console.error(String(error));
      process.exit(1);
    },
  );
}
