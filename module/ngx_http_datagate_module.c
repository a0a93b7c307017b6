
/*
 * datagate: the module.  Directives, configuration create/merge, the
 * compiled policy of the cycle, the shared zone (datagate_cache), phase
 * registration and the per-consumer pseudonym keys.
 */


#include "ngx_http_datagate.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "dg_rstate.h"


#define NGX_HTTP_DATAGATE_ZONE_DEFAULT      "datagate"
#define NGX_HTTP_DATAGATE_ZONE_SIZE         (10 * 1024 * 1024)
#define NGX_HTTP_DATAGATE_CACHE_TTL         30
#define NGX_HTTP_DATAGATE_SECRET_MAX        4096


static ngx_int_t ngx_http_datagate_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_datagate_policy_cleanup(void *data);
static ngx_int_t ngx_http_datagate_check_dataset(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_loc_conf_t *dlcf);

static ngx_int_t ngx_http_datagate_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_datagate_init(ngx_conf_t *cf);
static void *ngx_http_datagate_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_datagate_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_datagate_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_datagate_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_datagate_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);

static char *ngx_http_datagate_policy(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_datagate_dataset(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_datagate_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_datagate_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_datagate_geoip(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_datagate_audit_log(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_datagate_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_datagate_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_datagate_real_ip_from(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);

static ngx_int_t ngx_http_datagate_init_process(ngx_cycle_t *cycle);
static void ngx_http_datagate_exit_process(ngx_cycle_t *cycle);
static void ngx_http_datagate_exit_master(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_datagate_depth_bounds = {
    ngx_conf_check_num_bounds, 1, 4096
};


static ngx_command_t  ngx_http_datagate_commands[] = {

    { ngx_string("datagate_policy"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_datagate_policy,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("datagate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_datagate_loc_conf_t, enable),
      NULL },

    { ngx_string("datagate_dataset"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_datagate_dataset,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("datagate_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_datagate_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("datagate_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_datagate_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("datagate_geoip"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_datagate_geoip,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("datagate_audit_log"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_http_datagate_audit_log,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("datagate_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_datagate_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("datagate_catalogue"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_datagate_catalogue,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("datagate_mask_buffer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_datagate_loc_conf_t, mask_buffer),
      NULL },

    { ngx_string("datagate_mask_turn"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_datagate_loc_conf_t, mask_turn),
      NULL },

    { ngx_string("datagate_hold_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_datagate_loc_conf_t, hold_max),
      NULL },

    { ngx_string("datagate_mask_depth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_datagate_loc_conf_t, mask_depth),
      &ngx_http_datagate_depth_bounds },

    { ngx_string("datagate_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_datagate_secret,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("datagate_state"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_datagate_state,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("datagate_real_ip_from"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_datagate_real_ip_from,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("datagate_real_ip_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_datagate_loc_conf_t, real_ip_header),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_datagate_module_ctx = {
    ngx_http_datagate_preconfiguration,    /* preconfiguration */
    ngx_http_datagate_init,                /* postconfiguration */

    ngx_http_datagate_create_main_conf,    /* create main configuration */
    ngx_http_datagate_init_main_conf,      /* init main configuration */

    ngx_http_datagate_create_srv_conf,     /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_datagate_create_loc_conf,     /* create location configuration */
    ngx_http_datagate_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_datagate_module = {
    NGX_MODULE_V1,
    &ngx_http_datagate_module_ctx,         /* module context */
    ngx_http_datagate_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_datagate_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_datagate_exit_process,        /* exit process */
    ngx_http_datagate_exit_master,         /* exit master */
    NGX_MODULE_V1_PADDING
};


/* ---- pseudonym keys ------------------------------------------------- */

const u_char *
ngx_http_datagate_pseudonym_key(ngx_http_datagate_main_conf_t *dmcf,
    const dg_consumer_t *c)
{
    u_char      *key;
    u_char       msg[512];
    dg_bytes_t   part;

    if (dmcf->policy == NULL || dmcf->pseudo_keys == NULL
        || c->index >= dmcf->policy->nconsumers)
    {
        return NULL;
    }

    key = dmcf->pseudo_keys + c->index * DG_SHA256_LEN;

    if (dmcf->pseudo_done[c->index]) {
        return key;
    }

    if (sizeof("pseudonym:") - 1 + c->id.len > sizeof(msg)) {
        return NULL;
    }

    ngx_memcpy(msg, "pseudonym:", sizeof("pseudonym:") - 1);
    ngx_memcpy(msg + sizeof("pseudonym:") - 1, c->id.data, c->id.len);

    part.data = msg;
    part.len = sizeof("pseudonym:") - 1 + c->id.len;

    if (dg_hmac_sha256(dmcf->secret, dmcf->secret_len, &part, 1, key) != 0) {
        return NULL;
    }

    dmcf->pseudo_done[c->index] = 1;

    return key;
}


/* ---- shared zone ---------------------------------------------------- */

static ngx_int_t
ngx_http_datagate_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_datagate_main_conf_t  *odmcf = data;

    size_t                          len;
    ngx_http_datagate_tree_t       *trees[6];
    ngx_http_datagate_main_conf_t  *dmcf;
    ngx_uint_t                      i;

    dmcf = shm_zone->data;

    if (odmcf) {
        /* reload: keep the old zone's data; the policy version in every
         * cache key keeps old decisions from answering for a new policy */
        dmcf->sh = odmcf->sh;
        dmcf->shpool = odmcf->shpool;
        return NGX_OK;
    }

    dmcf->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        dmcf->sh = dmcf->shpool->data;
        return NGX_OK;
    }

    dmcf->sh = ngx_slab_calloc(dmcf->shpool,
                               sizeof(ngx_http_datagate_shctx_t));
    if (dmcf->sh == NULL) {
        return NGX_ERROR;
    }

    dmcf->shpool->data = dmcf->sh;

    trees[0] = &dmcf->sh->cache;
    trees[1] = &dmcf->sh->stats;
    trees[2] = &dmcf->sh->limits;
    trees[3] = &dmcf->sh->incidents;
    trees[4] = &dmcf->sh->abuse;
    trees[5] = &dmcf->sh->abuse_susp;

    for (i = 0; i < sizeof(trees) / sizeof(trees[0]); i++) {
        ngx_rbtree_init(&trees[i]->rbtree, &trees[i]->sentinel,
                        ngx_str_rbtree_insert_value);
        ngx_queue_init(&trees[i]->queue);
    }

    len = sizeof(" in datagate zone \"\"") + shm_zone->shm.name.len;

    dmcf->shpool->log_ctx = ngx_slab_alloc(dmcf->shpool, len);
    if (dmcf->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(dmcf->shpool->log_ctx, " in datagate zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* running out of zone memory is handled by eviction */
    dmcf->shpool->log_nomem = 0;

    /* the key of identifiers when there is no datagate_secret */
    ngx_http_datagate_abuse_zone(dmcf);

    /* a fresh zone (start, restart): the quota counters of the last run */
    if (dmcf->state_path.len) {
        ngx_http_datagate_state_load(dmcf, shm_zone->shm.log);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_datagate_add_zone(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf, ngx_str_t *name, size_t size)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, name, size,
                                     &ngx_http_datagate_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: zone \"%V\" is already used", name);
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_datagate_init_zone;
    shm_zone->data = dmcf;

    dmcf->shm_zone = shm_zone;

    return NGX_OK;
}


/* ---- policy --------------------------------------------------------- */

static void
ngx_http_datagate_policy_cleanup(void *data)
{
    dg_policy_t  *policy = data;

    dg_policy_free(policy);
}


static ngx_int_t
ngx_http_datagate_check_dataset(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_loc_conf_t *dlcf)
{
    ngx_str_t            name;
    ngx_uint_t           line;
    const dg_dataset_t  *ds;

    ds = dg_policy_dataset(dmcf->policy, (const char *) dlcf->dataset_id.data,
                           dlcf->dataset_id.len);
    if (ds != NULL) {
        dlcf->dataset = ds;
        dlcf->dataset_index = ds->index;
        return NGX_OK;
    }

    /* name the line of the datagate_dataset directive */

    name = cf->conf_file->file.name;
    line = cf->conf_file->line;

    if (dlcf->dataset_file.len) {
        cf->conf_file->file.name = dlcf->dataset_file;
        cf->conf_file->line = dlcf->dataset_line;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "datagate: dataset \"%V\" is not in the policy \"%V\"",
                       &dlcf->dataset_id, &dmcf->policy_path);

    cf->conf_file->file.name = name;
    cf->conf_file->line = line;

    return NGX_ERROR;
}


/* ---- phases, processes ---------------------------------------------- */

static ngx_int_t
ngx_http_datagate_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_datagate_add_variables(cf);
}


static ngx_int_t
ngx_http_datagate_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt            *h;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_datagate_module);

    if (dmcf->policy == NULL) {
        /* module loaded, not used: stay out of every request */
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /*
     * The preaccess phase, not the access phase: access handlers are
     * skipped under "satisfy any" as soon as one of them allows, and
     * datagate must not be bypassable.  Preaccess runs for every request
     * after the TLS handshake (client certificate verified) and before
     * limit_req / limit_conn only by module order, which does not matter.
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_datagate_access_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_datagate_log_handler;

    if (ngx_http_datagate_headers_init(cf, dmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_datagate_identity_init(cf);
}


static ngx_int_t
ngx_http_datagate_init_process(ngx_cycle_t *cycle)
{
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_datagate_module);
    if (dmcf == NULL || dmcf->policy == NULL) {
        return NGX_OK;
    }

    if (ngx_http_datagate_state_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_datagate_redis_init_process(cycle);
}


static void
ngx_http_datagate_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_datagate_module);
    if (dmcf == NULL || dmcf->policy == NULL) {
        return;
    }

    ngx_http_datagate_redis_exit_process(cycle);
}


/*
 * The master on its way out (stop or quit, not reload): the workers are
 * gone, the zone is still mapped, and the master may write where the
 * workers may not.
 */
static void
ngx_http_datagate_exit_master(ngx_cycle_t *cycle)
{
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_datagate_module);
    if (dmcf == NULL || dmcf->policy == NULL || dmcf->sh == NULL
        || dmcf->state_path.len == 0)
    {
        return;
    }

    (void) ngx_http_datagate_state_save(dmcf, cycle->log, 1);
}


/* ---- configuration -------------------------------------------------- */

static void *
ngx_http_datagate_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_datagate_main_conf_t));
    if (dmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     dmcf->policy_path = { 0, NULL };
     *     dmcf->policy = NULL;
     *     dmcf->shm_zone = NULL;
     *     dmcf->geoip_path = { 0, NULL };
     *     dmcf->audit_file = NULL;
     *     dmcf->audit_hash = 0;
     *     dmcf->audit_md = { { NULL, NULL }, NULL };
     *     dmcf->audit_serve = 0;
     *     dmcf->secret_len = 0;
     *     dmcf->redis_enabled = 0;
     *     dmcf->enforced_locs = NULL;
     */

    dmcf->cache_ttl = NGX_CONF_UNSET;
    dmcf->state_interval = NGX_CONF_UNSET_MSEC;

    return dmcf;
}


static char *
ngx_http_datagate_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_datagate_main_conf_t *dmcf = conf;

    ngx_str_t    name;
    ngx_uint_t   i;
    dg_bytes_t   part;

    ngx_conf_init_value(dmcf->cache_ttl, NGX_HTTP_DATAGATE_CACHE_TTL);
    ngx_conf_init_msec_value(dmcf->state_interval, 60000);

    if (dmcf->policy == NULL) {

        if (dmcf->shm_zone || dmcf->redis_enabled || dmcf->geoip_path.len
            || dmcf->audit_file)
        {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "datagate: datagate directives without "
                          "\"datagate_policy\" have no effect");
        }

        return NGX_CONF_OK;
    }

    if (dmcf->shm_zone == NULL) {
        ngx_str_set(&name, NGX_HTTP_DATAGATE_ZONE_DEFAULT);

        if (ngx_http_datagate_add_zone(cf, dmcf, &name,
                                       NGX_HTTP_DATAGATE_ZONE_SIZE)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (dmcf->secret_len == 0) {
        if (RAND_bytes(dmcf->secret, 32) != 1) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "datagate: RAND_bytes() failed");
            return NGX_CONF_ERROR;
        }

        dmcf->secret_len = 32;
        dmcf->secret_generated = 1;

        ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                      "datagate: no \"datagate_secret\": using a random key, "
                      "pseudonyms (mask \"hash\") change on every restart "
                      "and reload");
    }

    /* the Redis tier of the decision cache needs a key every node has */

    if (dmcf->redis_enabled && !dmcf->secret_generated) {
        part.data = "redis-decision";
        part.len = sizeof("redis-decision") - 1;

        if (dg_hmac_sha256(dmcf->secret, dmcf->secret_len, &part, 1,
                           dmcf->dcache_key)
            != 0)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "datagate: HMAC() failed");
            return NGX_CONF_ERROR;
        }

        dmcf->dcache_redis = 1;

    } else if (dmcf->redis_enabled) {
        ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                      "datagate: no \"datagate_secret\": decisions are "
                      "not shared through redis");
    }

    if (ngx_http_datagate_abuse_conf(cf, dmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    dmcf->pseudo_keys = ngx_pcalloc(cf->pool,
                                    dmcf->policy->nconsumers * DG_SHA256_LEN
                                    + 1);
    dmcf->pseudo_done = ngx_pcalloc(cf->pool, dmcf->policy->nconsumers + 1);

    if (dmcf->pseudo_keys == NULL || dmcf->pseudo_done == NULL) {
        return NGX_CONF_ERROR;
    }

    /* the safety net's methods: each detect kind's class, or its own */
    dg_policy_detect_specs(dmcf->policy, dmcf->detect, NULL);

    if (dmcf->geoip_path.len == 0) {
        for (i = 0; i < dmcf->policy->nconsumers; i++) {
            if (dmcf->policy->consumers[i].ncountries
                || dmcf->policy->consumers[i].nregions)
            {
                ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                              "datagate: consumer \"%*s\" has a geo rule "
                              "but there is no \"datagate_geoip\": its "
                              "requests are denied (geo_denied)",
                              dmcf->policy->consumers[i].id.len,
                              dmcf->policy->consumers[i].id.data);
            }
        }

    } else if (ngx_http_datagate_geoip_open(cf, dmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (dmcf->audit_file) {
        if (dmcf->audit_serve && dmcf->state_path.len == 0) {
            /* serving without records is only acceptable when the loss
             * survives a restart into the next record */
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "datagate: \"datagate_audit_log ... "
                          "on_failure=serve\" needs \"datagate_state\", "
                          "which keeps the count of lost records across a "
                          "restart, in %V:%ui", &dmcf->audit_conf_file,
                          dmcf->audit_conf_line);
            return NGX_CONF_ERROR;
        }

        if (ngx_http_datagate_audit_init(cf, dmcf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_datagate_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_datagate_srv_conf_t  *dscf;

    dscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_datagate_srv_conf_t));
    if (dscf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     dscf->enforced = 0;
     */

    return dscf;
}


static void *
ngx_http_datagate_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_datagate_loc_conf_t  *dlcf;

    dlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_datagate_loc_conf_t));
    if (dlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     dlcf->dataset_id = { 0, NULL };
     *     dlcf->dataset = NULL;
     *     dlcf->dataset_file = { 0, NULL };
     *     dlcf->status = 0;
     *     dlcf->catalogue = 0;
     *     dlcf->catalogue_file = { 0, NULL };
     *     dlcf->real_ip_header = { 0, NULL };
     */

    dlcf->enable = NGX_CONF_UNSET;
    dlcf->mask_buffer = NGX_CONF_UNSET_SIZE;
    dlcf->mask_turn = NGX_CONF_UNSET_SIZE;
    dlcf->hold_max = NGX_CONF_UNSET_SIZE;
    dlcf->mask_depth = NGX_CONF_UNSET_UINT;
    dlcf->dataset_index = NGX_CONF_UNSET_UINT;
    dlcf->real_ip_from = NGX_CONF_UNSET_PTR;

    return dlcf;
}


static char *
ngx_http_datagate_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_datagate_loc_conf_t *prev = parent;
    ngx_http_datagate_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_datagate_srv_conf_t   *dscf;
    ngx_http_datagate_main_conf_t  *dmcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_size_value(conf->mask_buffer, prev->mask_buffer,
                              64 * 1024);
    ngx_conf_merge_size_value(conf->mask_turn, prev->mask_turn,
                              2 * 1024 * 1024);
    ngx_conf_merge_size_value(conf->hold_max, prev->hold_max,
                              NGX_HTTP_DATAGATE_HOLD_MAX);
    ngx_conf_merge_uint_value(conf->mask_depth, prev->mask_depth, 64);
    ngx_conf_merge_ptr_value(conf->real_ip_from, prev->real_ip_from, NULL);
    ngx_conf_merge_str_value(conf->real_ip_header, prev->real_ip_header,
                             "X-Forwarded-For");

    if (conf->dataset_id.len == 0) {
        conf->dataset_id = prev->dataset_id;
        conf->dataset_file = prev->dataset_file;
        conf->dataset_line = prev->dataset_line;
        conf->dataset = prev->dataset;
        conf->dataset_index = prev->dataset_index;
    }

    if (conf->mask_buffer < 256) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: \"datagate_mask_buffer\" must be at "
                           "least 256 bytes");
        return NGX_CONF_ERROR;
    }

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_datagate_module);

    if (conf->enable == 1 && dmcf->policy == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: \"datagate on\" needs "
                           "\"datagate_policy\" in the http block");
        return NGX_CONF_ERROR;
    }

    if (conf->dataset_id.len && conf->dataset == NULL && dmcf->policy) {
        if (ngx_http_datagate_check_dataset(cf, dmcf, conf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (conf->dataset_id.len && dmcf->policy == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: \"datagate_dataset %V\" needs "
                           "\"datagate_policy\" in the http block",
                           &conf->dataset_id);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    /*
     * An enforced location must name its dataset.  Only real locations
     * are checked (the http / server level confs have no name); at run
     * time an enforced request without a dataset is refused anyway.
     */

    if (conf->enable == 1 && conf->dataset_id.len == 0 && !conf->status
        && !conf->catalogue
        && clcf != NULL && clcf->name.len != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: location \"%V\" is enforced "
                           "(\"datagate on\") but has no "
                           "\"datagate_dataset\" (use \"datagate off\" "
                           "for locations that serve no dataset)",
                           &clcf->name);
        return NGX_CONF_ERROR;
    }

    /*
     * Locations are merged with cf->ctx->srv_conf set to their server's
     * (ngx_http_merge_servers()): a server with an enforced location
     * answers a client certificate nginx refused with the JSON error
     * (_filter.c), servers without one keep nginx's page.
     */

    if (ngx_http_datagate_catalogue_merge(cf, dmcf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->catalogue) {
        /* the consumer is checked as on a data location (_access.c) */
        dscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_datagate_module);
        if (dscf != NULL) {
            dscf->enforced = 1;
        }
    }

    if (conf->enable == 1 && !conf->status && !conf->catalogue) {
        dscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_datagate_module);
        if (dscf != NULL) {
            dscf->enforced = 1;
        }

        /* its upstream will ignore X-Accel-* (_headers.c) */
        if (dmcf->policy
            && ngx_http_datagate_headers_location(cf, dmcf) != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* ---- directives ----------------------------------------------------- */

static char *
ngx_http_datagate_policy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_datagate_main_conf_t *dmcf = conf;

    ngx_str_t           *value;
    dg_policy_t         *policy;
    ngx_pool_cleanup_t  *cln;
    char                 err[DG_ERRLEN];

    if (dmcf->policy_path.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    dmcf->policy_path = value[1];

    if (ngx_conf_full_name(cf->cycle, &dmcf->policy_path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    err[0] = '\0';

    policy = dg_policy_load((const char *) dmcf->policy_path.data, err,
                            sizeof(err));
    if (policy == NULL) {
        err[sizeof(err) - 1] = '\0';
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: policy not loaded: %s", err);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_datagate_policy_cleanup;
    cln->data = policy;

    dmcf->policy = policy;

    ngx_log_error(NGX_LOG_INFO, cf->log, 0,
                  "datagate: policy \"%V\" version %s: %uz consumers, "
                  "%uz datasets, %uz grants",
                  &dmcf->policy_path, policy->version_hex,
                  policy->nconsumers, policy->ndatasets, policy->ngrants);

    return NGX_CONF_OK;
}


static char *
ngx_http_datagate_dataset(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_datagate_loc_conf_t *dlcf = conf;

    ngx_str_t                      *value;
    ngx_http_datagate_main_conf_t  *dmcf;

    if (dlcf->dataset_id.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "takes a dataset id";
    }

    dlcf->dataset_id = value[1];
    dlcf->dataset_file = cf->conf_file->file.name;
    dlcf->dataset_line = cf->conf_file->line;

    /* "datagate_dataset" implies "datagate on" unless said otherwise */
    if (dlcf->enable == NGX_CONF_UNSET) {
        dlcf->enable = 1;
    }

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_datagate_module);

    if (dmcf->policy) {
        /* the policy is known already: check here, with this line */
        if (ngx_http_datagate_check_dataset(cf, dmcf, dlcf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_datagate_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_datagate_main_conf_t *dmcf = conf;

    u_char      *p;
    ssize_t      size;
    ngx_str_t   *value, name, s;
    ngx_int_t    ttl;
    ngx_uint_t   i;

    if (dmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;
    size = 0;
    name.len = 0;
    ttl = NGX_CONF_UNSET;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            name.data = value[i].data + 5;

            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            name.len = p - name.data;

            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "zone \"%V\" is too small", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {

            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            ttl = ngx_parse_time(&s, 1);
            if (ttl == NGX_ERROR || ttl < 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid ttl \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone=NAME:SIZE\"",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (ttl != NGX_CONF_UNSET) {
        dmcf->cache_ttl = ttl;
    }

    if (ngx_http_datagate_add_zone(cf, dmcf, &name, size) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_datagate_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_datagate_main_conf_t *dmcf = conf;

    ngx_str_t                       *value, s;
    ngx_int_t                        n;
    ngx_url_t                        u;
    ngx_msec_t                       ms;
    ngx_uint_t                       i;
    ngx_http_datagate_redis_conf_t  *rc;

    if (dmcf->redis_enabled) {
        return "is duplicate";
    }

    value = cf->args->elts;
    rc = &dmcf->redis;

    rc->db = 0;
    rc->timeout = 200;
    rc->connect_timeout = 500;
    rc->stale = 5000;
    rc->nodes = 1;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.default_port = 6379;

    /* resolved here, once: no DNS at run time */

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "datagate: %s in redis \"%V\"", u.err,
                               &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0 || u.addrs == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: redis \"%V\" has no address", &u.url);
        return NGX_CONF_ERROR;
    }

    rc->addr_text = value[1];
    rc->addr = &u.addrs[0];

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rc->password.data = value[i].data + 9;
            rc->password.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR || n > 1024) {
                goto invalid;
            }

            rc->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "nodes=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n == NGX_ERROR || n < 1 || n > 1024) {
                goto invalid;
            }

            rc->nodes = n;
            continue;
        }

        s.data = (u_char *) ngx_strchr(value[i].data, '=');
        if (s.data == NULL) {
            goto invalid;
        }

        s.data++;
        s.len = value[i].data + value[i].len - s.data;

        ms = ngx_parse_time(&s, 0);
        if (ms == (ngx_msec_t) NGX_ERROR) {
            goto invalid;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            rc->timeout = ms;

        } else if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            rc->connect_timeout = ms;

        } else if (ngx_strncmp(value[i].data, "stale=", 6) == 0) {
            rc->stale = ms;

        } else {
            goto invalid;
        }
    }

    dmcf->redis_enabled = 1;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "datagate: invalid redis parameter \"%V\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_datagate_geoip(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_datagate_main_conf_t *dmcf = conf;

    ngx_str_t  *value;

    if (dmcf->geoip_path.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    dmcf->geoip_path = value[1];

    if (ngx_conf_full_name(cf->cycle, &dmcf->geoip_path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_datagate_audit_log(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_datagate_main_conf_t *dmcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i, hash, on_failure;

    if (dmcf->audit_file) {
        return "is duplicate";
    }

    value = cf->args->elts;

    dmcf->audit_path = value[1];
    dmcf->audit_hash = 0;
    dmcf->audit_serve = 0;
    hash = 0;
    on_failure = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "hash=sha256") == 0
            || ngx_strcmp(value[i].data, "hash=sm3") == 0)
        {
            if (hash++) {
                goto duplicate;
            }

            dmcf->audit_hash = (value[i].data[5] == 's'
                                && value[i].data[6] == 'm') ? 1 : 0;
            continue;
        }

        if (ngx_strcmp(value[i].data, "on_failure=deny") == 0
            || ngx_strcmp(value[i].data, "on_failure=serve") == 0)
        {
            if (on_failure++) {
                goto duplicate;
            }

            dmcf->audit_serve = (value[i].data[11] == 's') ? 1 : 0;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: invalid parameter \"%V\" (hash=sha256, "
                           "hash=sm3, on_failure=deny or on_failure=serve)",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    /* on_failure=serve needs datagate_state, which may come later */
    dmcf->audit_conf_file = cf->conf_file->file.name;
    dmcf->audit_conf_line = cf->conf_file->line;

    /* opened by the cycle, reopened on USR1 */
    dmcf->audit_file = ngx_conf_open_file(cf->cycle, &dmcf->audit_path);
    if (dmcf->audit_file == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

duplicate:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "datagate: duplicate parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_datagate_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_datagate_loc_conf_t *dlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_datagate_status_handler;

    dlcf->status = 1;

    return NGX_CONF_OK;
}


/*
 * datagate_real_ip_from ADDRESS | CIDR | unix:;  the TCP peers whose
 * datagate_real_ip_header datagate believes (as set_real_ip_from, but
 * without host names: no DNS, and host bits are an error)
 */
static char *
ngx_http_datagate_real_ip_from(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_datagate_loc_conf_t *dlcf = conf;

    ngx_int_t    rc;
    ngx_str_t   *value;
    ngx_cidr_t  *cidr;

    value = cf->args->elts;

    if (dlcf->real_ip_from == NGX_CONF_UNSET_PTR
        || dlcf->real_ip_from == NULL)
    {
        dlcf->real_ip_from = ngx_array_create(cf->pool, 2,
                                              sizeof(ngx_cidr_t));
        if (dlcf->real_ip_from == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    cidr = ngx_array_push(dlcf->real_ip_from);
    if (cidr == NULL) {
        return NGX_CONF_ERROR;
    }

#if (NGX_HAVE_UNIX_DOMAIN)

    if (ngx_strcmp(value[1].data, "unix:") == 0) {
        ngx_memzero(cidr, sizeof(ngx_cidr_t));
        cidr->family = AF_UNIX;
        return NGX_CONF_OK;
    }

#endif

    rc = ngx_ptocidr(&value[1], cidr);

    if (rc == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: \"%V\" is not an address or CIDR "
                           "(host names are not resolved)", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (rc == NGX_DONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: \"%V\" has host bits beyond its "
                           "prefix", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_datagate_secret(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_datagate_main_conf_t *dmcf = conf;

    u_char           *buf;
    size_t            len;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t        *value;
    ngx_file_info_t   fi;
    char             *rv;
    u_char            mode[5];

    if (dmcf->secret_path.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    dmcf->secret_path = value[1];

    if (ngx_conf_full_name(cf->cycle, &dmcf->secret_path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(dmcf->secret_path.data, NGX_FILE_RDONLY,
                       NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "datagate: cannot open secret \"%V\"",
                           &dmcf->secret_path);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;
    buf = NULL;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "datagate: cannot stat secret \"%V\"",
                           &dmcf->secret_path);
        goto done;
    }

    if (!S_ISREG(fi.st_mode)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: secret \"%V\" is not a regular file",
                           &dmcf->secret_path);
        goto done;
    }

    if (fi.st_mode & (S_IRGRP|S_IWGRP|S_IROTH|S_IWOTH)) {
        /* ngx_sprintf() has no %o: four octal digits by hand */
        mode[0] = (u_char) ('0' + ((fi.st_mode >> 9) & 7));
        mode[1] = (u_char) ('0' + ((fi.st_mode >> 6) & 7));
        mode[2] = (u_char) ('0' + ((fi.st_mode >> 3) & 7));
        mode[3] = (u_char) ('0' + (fi.st_mode & 7));
        mode[4] = '\0';

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: secret \"%V\" is readable or writable "
                           "by group or others (mode %s): it must be "
                           "readable by its owner only (chmod 600)",
                           &dmcf->secret_path, mode);
        goto done;
    }

    buf = ngx_alloc(NGX_HTTP_DATAGATE_SECRET_MAX + 1, cf->log);
    if (buf == NULL) {
        goto done;
    }

    n = ngx_read_fd(fd, buf, NGX_HTTP_DATAGATE_SECRET_MAX + 1);
    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "datagate: cannot read secret \"%V\"",
                           &dmcf->secret_path);
        goto done;
    }

    /* a text key file may end in a newline; a binary one is used whole */
    len = dg_secret_len(buf, n);

    if (len > NGX_HTTP_DATAGATE_SECRET_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: secret \"%V\" is larger than %d bytes",
                           &dmcf->secret_path, NGX_HTTP_DATAGATE_SECRET_MAX);
        goto done;
    }

    if (len < NGX_HTTP_DATAGATE_SECRET_MIN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: secret \"%V\" has %uz bytes, it needs "
                           "at least %d random bytes",
                           &dmcf->secret_path, len,
                           NGX_HTTP_DATAGATE_SECRET_MIN);
        goto done;
    }

    if (len > sizeof(dmcf->secret)) {
        /* a long key is hashed to its SHA-256 as HMAC would do */
        if (EVP_Digest(buf, len, dmcf->secret, NULL, EVP_sha256(), NULL)
            != 1)
        {
            goto done;
        }

        dmcf->secret_len = DG_SHA256_LEN;

    } else {
        ngx_memcpy(dmcf->secret, buf, len);
        dmcf->secret_len = len;
    }

    rv = NGX_CONF_OK;

done:

    if (buf) {
        ngx_explicit_memzero(buf, NGX_HTTP_DATAGATE_SECRET_MAX + 1);
        ngx_free(buf);
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &dmcf->secret_path);
    }

    return rv;
}
