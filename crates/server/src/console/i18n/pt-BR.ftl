# Console da retaguarda central — português do Brasil (idioma padrão).
# Cada id aqui tem o mesmo id em en.ftl (teste de paridade).

nav-brand = Loja · Console da central
nav-stores = Lojas
nav-documents = Documentos
nav-orders = Pedidos omni
nav-switches = Chaves e horários
nav-rollouts = Implantações
nav-users = Usuários
nav-audit = Auditoria
nav-sign-out = Sair

common-back = Voltar
common-all = Todos
common-none = Nenhum
common-never = Nunca
common-timezone = Horários de Brasília (UTC−3).
common-role-viewer = consulta
common-role-operator = operador
common-role-admin = administrador

login-title = Entrar no console
login-username = Usuário
login-password = Senha
login-submit = Entrar
login-failed = Usuário ou senha incorretos.

err-not-found = Não encontrado.
err-internal = Erro interno. Tente de novo; se persistir, veja o log da central.
err-forbidden = Seu perfil não permite esta ação.
err-csrf = Formulário expirado ou inválido. Recarregue a página e tente de novo.
err-action-failed = A ação não pôde ser feita (dados inválidos ou estado já mudou).

unit-minutes = { $n } min
unit-hours = { $n } h
unit-days = { $n } d

status-never = Nunca conectou
status-silent = Sem contato
status-rejections = Rejeições
status-behind = Atrasada
status-ok = Em dia

stores-title = Lojas
stores-count = { $n } lojas, com problema primeiro.
stores-col-status = Situação
stores-col-store = Loja
stores-col-central = Central
stores-col-contact = Último contato
stores-col-lag = Atraso da réplica (linhas)
stores-col-documents = Documentos
stores-col-rejected = Rejeitados
stores-waiting = aguardando o ERP

store-title = Loja { $store }
store-entities = Réplica por entidade
store-col-entity = Entidade
store-col-position = Posição da loja
store-col-head = Topo na central
store-col-behind = Linhas a receber
store-col-downloaded = Último download
store-exception = Exceção à janela de disponibilidade
store-exception-on = Esta loja recebe as mudanças sem esperar a janela.
store-exception-off = Esta loja segue a janela de disponibilidade.
store-rejections = Documentos rejeitados
store-recent = Documentos recentes

docs-title = Documentos (fila do ERP)
docs-count = { $n } documentos (no máximo 200, os mais recentes primeiro).
docs-col-received = Recebido em
docs-col-store = Loja
docs-col-kind = Tipo
docs-col-store-seq = Nº na loja
docs-col-status = Situação
docs-col-message = Mensagem do ERP
docs-from = De
docs-to = Até
docs-filter = Filtrar
docs-pending = Aguardando ERP
docs-processed = Processado
docs-rejected = Rejeitado

orders-title = Pedidos de venda omni
orders-count = { $n } pedidos, atrasados primeiro.
orders-older-than = Mais antigos que
orders-overdue = Atrasado
orders-col-number = Pedido
orders-col-channel = Canal
orders-col-status = Situação
orders-col-store = Loja
orders-col-created = Criado em
orders-col-age = Idade
orders-col-total = Total
orders-status-open = Aberto
orders-status-accepted = Aceito
orders-status-in_separation = Em separação
orders-status-ready_for_pickup = Pronto para retirada
orders-status-put_back_pending = Devolver à prateleira
orders-status-concluded = Concluído
orders-status-cancelled = Cancelado

picking-title = Lista de separação — pedido { $number }
picking-print = Imprimir
picking-delivery = Entrega
picking-delivery-pickup = Retira na loja
picking-delivery-ship-from-store = Envio pela loja
picking-delivery-endless-aisle = Prateleira infinita
picking-customer = Documento do cliente
picking-col-store = Loja
picking-col-line = Item
picking-col-product = Produto
picking-col-qty = Quantidade
picking-col-price = Valor
picking-col-state = Situação
picking-col-check = Separado

switch-title = Chaves e horários
switch-intro = Minutos entre downloads liberados a uma loja, por entidade e nível (rede, central, loja); o nível mais próximo da loja vale.
switch-col-entity = Entidade
switch-col-default = Padrão
switch-col-levels = Definido em
switch-col-minutes = Minutos
switch-minutes = { $n } min
switch-follows-default = segue o padrão
switch-chain = Rede toda
switch-exceptions = Lojas fora da janela
switch-set = Definir minutos
switch-level = Nível

audit-title = Auditoria
audit-col-at = Quando
audit-col-user = Quem
audit-col-action = Ação
audit-col-target = Alvo
audit-col-outcome = Resultado

action-resend = Reenviar ao ERP
action-reassign = Reatribuir
action-picking = Lista de separação
action-exception-add = Liberar da janela
action-exception-remove = Voltar à janela
action-save = Salvar

rollout-title = Implantações de versão
rollout-intro = Cada versão do lojad publicada, suas ondas e o andamento de cada onda, como as lojas informaram à central. Uma versão pausada não é oferecida a nenhuma loja.
rollout-none = Nenhuma versão publicada.
rollout-release = Versão { $version } (nº { $sequence })
rollout-rollback-release = versão de retorno
rollout-started = Iniciada em { $at }
rollout-reached = Ondas liberadas: { $pct } % das lojas · pausa sozinha acima de { $halt } % de retornos
rollout-running = Em andamento
rollout-paused = Pausada
rollout-emergency = Emergência: todas as lojas
rollout-pilot = Piloto
rollout-at-once = Imediatamente
rollout-wave = Onda { $n } (até { $pct } %)
rollout-not-yet = ainda não liberada
rollout-outside = Fora das ondas
rollout-col-wave = Onda
rollout-col-when = Liberada após
rollout-col-stores = Lojas
rollout-col-updated = Na nova versão
rollout-col-trial = Em teste
rollout-col-rolled-back = Retornaram
rollout-col-failed = Falharam
rollout-col-waiting = Aguardando
rollout-pause = Pausar
rollout-resume = Retomar

users-title = Usuários do console
users-intro = Contas do console e seus perfis. Mudar o perfil ou desativar uma conta encerra as sessões dela. A sua própria conta não se altera aqui.
users-col-username = Usuário
users-col-role = Perfil
users-col-state = Situação
users-col-created = Criada em
users-active = Ativa
users-disabled = Desativada
users-yourself = (você)
users-change-role = Mudar perfil
users-disable = Desativar
users-enable = Reativar
users-create = Nova conta
users-password = Senha (mín. 10 caracteres)
users-create-submit = Criar conta

switch-schedules = Horários de download
integration-title = Integração com a central
integration-intro = Chave da integração (InterfaceIntegracao Ativo) por loja, central ou rede toda; vale o nível mais próximo da loja. Com a integração desligada a loja para os downloads e envios agendados: os documentos esperam na fila da loja e o PDV continua vendendo com a réplica. A loja recebe a chave pelo download de parâmetros.
integration-on = Ligada
integration-off = Desligada
integration-inherit = Segue o nível acima
integration-state = Integração
integration-on-everywhere = Nenhum nível define a chave: ligada em todas as lojas.
integration-no-store-off = Nenhuma loja com a integração desligada.
integration-stores-off = { $n } loja(s) com a integração desligada: { $stores }

stores-col-outbox = Fila da loja
stores-col-traffic = Requisições e bytes
stores-outbox = { $pending } pendentes, { $failed } com falha (há { $ago })
stores-outbox-unknown = não informada
stores-traffic = { $requests } req. · { $bytes }
store-integration = Integração: { $state } ({ $level })
store-integration-default = nenhum nível define; padrão
