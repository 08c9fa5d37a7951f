// A frontend developer's view: openapi-fetch with the default generics over the types
// openapi-typescript generated from the live document (./schema.ts, imported as ./schema.js), compiled with
// `tsc --strict`, no casts. Run as `node tour.js <base-url>`; prints one line per check.
import assert from "node:assert/strict";
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type MetricQuery = NonNullable<paths["/v1/metrics"]["get"]["parameters"]["query"]>;
type MetricPage = components["schemas"]["Page_MetricPublic_"];
type Problem = components["schemas"]["Problem"];

const baseUrl = process.argv[2];
const client = createClient<paths>({ baseUrl });

/** The query of a `next` link, as the typed parameters of the next call. */
function nextQuery(next: string): MetricQuery {
  const params = new URL(next, baseUrl).searchParams;
  return {
    limit: Number(params.get("limit")),
    after: params.get("after") ?? undefined,
    sort: params.get("sort") ?? undefined,
  };
}

async function fetchPage(query: MetricQuery): Promise<MetricPage> {
  const { data, error } = await client.GET("/v1/metrics", { params: { query } });
  assert.equal(error, undefined);
  assert.ok(data);
  return data;
}

async function pageThroughNext(): Promise<void> {
  const seen: string[] = [];
  let query: MetricQuery | null = { limit: 10, sort: "id" };
  let pages = 0;
  while (query !== null) {
    const data = await fetchPage(query);
    seen.push(...data.items.map((metric) => metric.id));
    pages += 1;
    assert.equal(data.total, 42);
    query = data.next === null ? null : nextQuery(data.next);
    assert.ok(pages <= 5, "next should end after five pages");
  }
  assert.equal(pages, 5);
  assert.equal(seen.length, 42);
  assert.deepEqual(seen, [...seen].sort());
  console.log(`paged: ${pages} pages, ${seen.length} metrics`);
}

async function readOneMetric(): Promise<void> {
  const { data, response } = await client.GET("/v1/metrics/{metric_id}", {
    params: { path: { metric_id: "car-t-dose-manufacturing-cost" } },
  });
  assert.ok(data);
  assert.equal(response.headers.get("etag")?.startsWith('"'), true);
  assert.equal(data.value, null);
  assert.equal(data.value_low, 45000);
  assert.equal(data.value_high, 65000);
  assert.equal(data.unit, "USD");
  assert.ok(data.evidence.quote.startsWith("The average cost of manufacturing a single CAR-T"));
  console.log(`metric: ${data.id} ${data.value_low}-${data.value_high} ${data.unit}`);
}

async function downloadCsv(): Promise<void> {
  const { data, response } = await client.GET("/v1/metrics.csv", {
    params: { query: { unit: "USD", sort: "-value_high" } },
    parseAs: "text",
  });
  assert.ok(data !== undefined);
  assert.equal(response.headers.get("content-type"), "text/csv; charset=utf-8");
  assert.equal(response.headers.get("content-disposition"), 'attachment; filename="metrics.csv"');
  const lines = data.trimEnd().split("\r\n");
  assert.ok(lines[0].startsWith("id,category,name"));
  assert.equal(lines.length, 5);
  assert.ok(lines[1].startsWith("personalized-cancer-medicine-market-size-2028,"));
  console.log(`csv: ${lines.length - 1} rows`);
}

async function typedProblems(): Promise<void> {
  const missing = await client.GET("/v1/metrics/{metric_id}", {
    params: { path: { metric_id: "no-such-metric" } },
  });
  const notFound: Problem | undefined = missing.error;
  assert.ok(notFound);
  assert.equal(notFound.status, 404);
  assert.equal(notFound.detail, "There is no metric 'no-such-metric'.");

  const invalid = await client.GET("/v1/metrics", { params: { query: { limit: 0 } } });
  const unprocessable: Problem | undefined = invalid.error;
  assert.ok(unprocessable);
  assert.equal(unprocessable.status, 422);
  assert.equal(unprocessable.errors?.[0]?.name, "limit");
  console.log(`problems: ${notFound.status} ${unprocessable.status}`);
}

await pageThroughNext();
await readOneMetric();
await downloadCsv();
await typedProblems();
