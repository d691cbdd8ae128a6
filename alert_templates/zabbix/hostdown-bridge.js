// nova-hostdown-bridge: POST one Zabbix event as JSON to the bridge, with its bearer token.
// Every parameter of the media type goes into the body as the string Zabbix made of it
// (a macro that does not resolve stays as its text; the bridge treats that as absent),
// except URL, Token and HTTPProxy. {EVENT.TAGSJSON} is sent as the list it encodes.
// Throwing makes Zabbix try again (Attempts / Attempt interval) and finally mark the
// alert failed with this text; the bridge stores a repeated event once.
var params = JSON.parse(value),
    payload = {},
    request = new HttpRequest();

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

var response = request.post(params.URL, JSON.stringify(payload)),
    status = request.getStatus();
if (status < 200 || status >= 300) {
    throw 'nova-hostdown-bridge answered HTTP ' + status + ': ' + response;
}
return 'stored';
