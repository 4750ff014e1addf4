# lojad status page — English (on request, ?lang=en).
# Every id here has the same id in pt-BR.ftl (parity test). The arguments
# ({ $n }…) are filled in by the page's script.

page-title = lojad status
head-store = store
head-version = version
head-channel = channel
head-pending-update = pending update
head-up = up
head-updated = updated
never = never
none = none
not-running = (not running)
not-answering = lojad not answering ({ $message })
switching = { $pending } (switching to { $trial })

card-integration = Integration
integration-on = on
integration-off = OFF by the central
card-pending = Outbox pending
card-oldest = Oldest undelivered
card-failed = Outbox failed
card-delivered = Delivered
card-tickets = Failed tickets (24 h)

section-jobs = Jobs
section-checks = Cash closes and Redução Z
section-omni = Omni orders waiting on the store
section-tickets = Recent failed tickets
section-replica = Replica
counted = (counted { $when })

col-job = Job
col-subject = Subject
col-switch = Switch
col-schedule = Schedule
col-last-run = Last run
col-outcome = Outcome
col-rows = Rows
col-duration = Duration
col-next-run = Next run
col-watermark = Watermark
col-message = Message
col-check = Check
col-register = Register
col-when = When
col-result = Result
col-order = Order
col-number = Number
col-line = Line
col-state = State
col-since = Since
col-ticket = #
col-kind = Kind
col-http = HTTP
col-error = Error
col-entity = Entity

switch-on = on
switch-off = off
outcome-ok = ok
outcome-failed = failed
outcome-disabled = disabled
outcome-held = held
outcome-never = never
outcome-running = running

when-ago = { $when } ({ $age } ago)
when-in = { $when } (in { $age })
check-cash-close = cash close
check-reducao-z = Redução Z
check-balanced = balanced
check-short = short { $amount }
check-over = over { $amount }
check-z-differs = differs from the day's sales by { $amount }
