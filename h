HTTP/1.1 422 Unprocessable Entity
date: Tue, 01 Dec 2026 08:35:10 GMT
server: uvicorn
content-length: 227
content-type: application/problem+json
vary: Origin
x-request-id: b03986f1b7897f4a7455808ebea0d361

