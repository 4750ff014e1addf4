# Página de status do lojad — português do Brasil (idioma padrão).
# Cada id aqui tem o mesmo id em en.ftl (teste de paridade). Os argumentos
# ({ $n }…) são preenchidos pelo script da página.

page-title = Status do lojad
head-store = loja
head-version = versão
head-channel = canal
head-pending-update = atualização pendente
head-up = no ar há
head-updated = atualizado
never = nunca
none = nenhuma
not-running = (parado)
not-answering = o lojad não responde ({ $message })
switching = { $pending } (trocando para { $trial })

card-integration = Integração
integration-on = ligada
integration-off = DESLIGADA pela central
card-pending = Fila: pendentes
card-oldest = Mais antigo não entregue
card-failed = Fila: com falha
card-delivered = Entregues
card-tickets = Falhas de comunicação (24 h)

section-jobs = Tarefas
section-checks = Fechamentos de caixa e Redução Z
section-omni = Pedidos omni esperando a loja
section-tickets = Falhas recentes de comunicação
section-replica = Réplica
counted = (contada { $when })

col-job = Tarefa
col-subject = Assunto
col-switch = Chave
col-schedule = Agenda
col-last-run = Última execução
col-outcome = Resultado
col-rows = Linhas
col-duration = Duração
col-next-run = Próxima execução
col-watermark = Posição
col-message = Mensagem
col-check = Conferência
col-register = Caixa
col-when = Quando
col-result = Resultado
col-order = Pedido
col-number = Número
col-line = Item
col-state = Situação
col-since = Desde
col-ticket = Nº
col-kind = Tipo
col-http = HTTP
col-error = Erro
col-entity = Entidade

switch-on = ligada
switch-off = desligada
outcome-ok = ok
outcome-failed = falhou
outcome-disabled = desligada
outcome-held = aguardando janela
outcome-never = nunca
outcome-running = rodando

when-ago = { $when } (há { $age })
when-in = { $when } (em { $age })
check-cash-close = fechamento de caixa
check-reducao-z = Redução Z
check-balanced = confere
check-short = falta { $amount }
check-over = sobra { $amount }
check-z-differs = difere das vendas do dia em { $amount }
