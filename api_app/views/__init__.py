"""The API (/api/v1/), one module per resource: `accounts` (and kinds), `queries`,
`containers`, `webhooks` (and event types); `common` holds what they share (error answers,
pagination, a service's refusal as a 400). Views shape requests and answers; the services and
selectors the pages use decide (`queries_app.services`, `queries_app.access`,
`queries_app.selectors`, and the board's `containers_app.selectors`).

Every view needs a bearer token (`authentication.BearerTokenAuthentication`), counts against
the token's rate limit (`throttling.TokenRateThrottle`) and answers errors in one shape
(`errors.exception_handler`); see REST_FRAMEWORK in the settings.
"""
