// nova-hostdown-bridge: POST one Zabbix event as JSON to the bridge, with its bearer token.
// Every parameter of the media type goes into the body as the string Zabbix made of it
// (a macro that does not resolve stays as its text; the bridge treats that as absent),
// except URL, Token and HTTPProxy. {EVENT.TAGSJSON} is sent as the list it encodes.
// A 429 or a 5xx (the bridge sheds load with 429 and Retry-After) is tried again here, no
// sooner than Retry-After (in seconds; Zabbix's engine cannot parse an HTTP date), for up to
// DEADLINE_MS, within the media type's 30 s timeout. Throwing makes Zabbix try again
// (Attempts / Attempt interval) and finally mark the alert failed with this text; the bridge
// stores a repeated event once.
var DEADLINE_MS = 25000,
    params = JSON.parse(value),
    payload = {},
    request = new HttpRequest();

function retryAfterMs(headers) {
    var name, seconds = 0;
    for (name in headers) {
        if (name.toLowerCase() === 'retry-after' && /^\s*\d+\s*$/.test(headers[name])) {
            seconds = parseInt(headers[name], 10);
        }
    }
    return seconds * 1000;
}

Object.keys(params).forEach(function (key) {
    if (key !== 'URL' && key !== 'Token' && key !== 'HTTPProxy') {
        payload[key] = params[key];
    }
});
try {
    payload.event_tags = JSON.parse(params.event_tags);
} catch (error) {
    // left as the text it is: the bridge reads an unresolved macro as no tags
}
if (typeof params.HTTPProxy === 'string' && params.HTTPProxy.trim() !== '') {
    request.setProxy(params.HTTPProxy);
}
request.addHeader('Content-Type: application/json');
request.addHeader('Authorization: Bearer ' + params.Token);

var started = Date.now(),
    delay = 500,
    response, status, wait;
while (true) {
    response = request.post(params.URL, JSON.stringify(payload));
    status = request.getStatus();
    if (status >= 200 && status < 300) {
        return 'stored';
    }
    if (status !== 429 && status < 500) {
        break;
    }
    wait = Math.max(delay, retryAfterMs(request.getHeaders()));
    if (Date.now() - started + wait > DEADLINE_MS) {
        break;
    }
    Zabbix.sleep(wait);
    delay = Math.min(delay * 2, 8000);
}
throw 'nova-hostdown-bridge answered HTTP ' + status + ': ' + response;
